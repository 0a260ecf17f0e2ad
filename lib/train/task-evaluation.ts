// MTEB's other task kinds as evaluations during training (train()'s evalClassification, evalClustering,
// evalPairClassification, evalReranking, evalSummarization, and bitext mining's evalTranslation): each set is read
// once, from a folder's validation or dev split where it has one (selecting a model on the test split would tune it to
// the test), and scored at every evaluation as `simcsepp eval` scores it, its texts prefixed as the saved model's
// encode, encodeQuery and encodeDocument will.
import { evaluateClassification, readClassificationSet, type ClassificationSet } from '../eval/classification.js'
import { evaluateClustering, readClusteringDataset, type ClusteringDataset } from '../eval/clustering.js'
import { evaluatePairClassification, readPairClassificationSet, type PairClassificationSet } from '../eval/pair-classification.js'
import { evaluateReranking, readRerankingSet, type RerankingSet } from '../eval/reranking.js'
import { evaluateSummarization, readSummarizationSet, type SummarizationSet } from '../eval/summarization.js'
import { byDataset, evaluateTranslation, readTranslationPairs, type TranslationPairs } from '../eval/translation.js'
import { isFolder, splitFile, subsetsOf } from '../eval/table.js'
import type { Embed } from '../embed/memo-embed.js'
import { setLabel } from '../hub/hub-model.js'
import { SELECTION_METRIC_NAMES, type EvalInfo } from './events.js'

/**
 * A task's set, the split of its folder it holds (absent: the set is one file), and for a multilingual dataset's
 * subset the dataset's folder and the subset's name.
 */
interface Split<S> {
  split?: string
  subset?: { dataset: string; subset: string }
  set: S
}

export interface TaskSets {
  classification: Split<ClassificationSet>[]
  clustering: Split<ClusteringDataset>[]
  pairClassification: Split<PairClassificationSet>[]
  reranking: Split<RerankingSet>[]
  summarization: Split<SummarizationSet>[]
  /** Parallel sentences (MTEB's bitext mining; a folder per language pair as its multilingual datasets keep them). */
  translation: Split<TranslationPairs>[]
}

export type TaskResults = Required<Pick<EvalInfo, keyof TaskSets>>

/**
 * MTEB's names of the task types whose texts are embedded alike (no query and document roles), by which a model's
 * prompts may be keyed: such a type's texts take the prompt of its name, else the model's default prompt.
 */
export const TASK_TYPES = ['STS', 'BitextMining', 'Classification', 'Clustering', 'PairClassification', 'Summarization'] as const
export type TaskType = (typeof TASK_TYPES)[number]

/** How each kind's texts are embedded: the symmetric types through their prompt, reranking's with the role prefixes. */
export interface TaskEmbedding {
  typed(type: TaskType): Embed
  plain: Embed
  queryPrefix?: string
  documentPrefix?: string
}

export const NO_TASKS: TaskSets = {
  classification: [],
  clustering: [],
  pairClassification: [],
  reranking: [],
  summarization: [],
  translation: [],
}

const SELECTION_SPLITS = ['validation', 'dev', 'test']

/** The split a run scores in `path`: a folder's validation split, else its dev split, else its test split; none for a file. */
export function selectionSplit(path: string): string | undefined {
  if (!isFolder(path)) return undefined
  return SELECTION_SPLITS.find((s) => splitFile(path, s) !== null) ?? 'test'
}

/**
 * Where `path` is a multilingual dataset (a folder per subset, no split of its own): its subsets holding the first of
 * the validation, dev and test splits that any holds, with that split; else null.
 */
function selectionSubsets(path: string): { split: string; subsets: { name: string; path: string }[] } | null {
  if (!isFolder(path) || SELECTION_SPLITS.some((s) => splitFile(path, s) !== null)) return null
  for (const split of SELECTION_SPLITS) {
    const subsets = subsetsOf(path, split)
    if (subsets) return { split, subsets }
  }
  return null
}

/** The sets of the six options, each read from its selectionSplit; `say` gets a line per set. */
export async function readTaskSets(
  o: {
    evalClassification: string[]
    evalClustering: string[]
    evalPairClassification: string[]
    evalReranking: string[]
    evalSummarization: string[]
    evalTranslation: string[]
  },
  say: (line: string) => void = () => {},
): Promise<TaskSets> {
  const read = async <S>(paths: string[], reader: (path: string, split?: string) => Promise<S>, about: (set: S) => string) => {
    const sets: Split<S>[] = []
    for (const path of paths) {
      const multilingual = selectionSubsets(path)
      for (const s of multilingual?.subsets ?? [{ name: '', path }]) {
        const split = multilingual?.split ?? selectionSplit(path)
        const set = await reader(s.path, split)
        say(`eval: ${s.path}${split ? ` (${split} split)` : ''}: ${about(set)} every --eval-every steps`)
        sets.push({ ...(split ? { split } : {}), ...(multilingual ? { subset: { dataset: path, subset: s.name } } : {}), set })
      }
    }
    return sets
  }
  return {
    classification: await read(o.evalClassification, readClassificationSet, (s) =>
      s.test
        ? `classification, ${s.train.texts.length} training and ${s.test.texts.length} test texts, accuracy`
        : `classification by cross-validation over ${s.train.texts.length} texts, accuracy`,
    ),
    clustering: await read(
      o.evalClustering,
      readClusteringDataset,
      (s) =>
        `clustering, ${s.sets.length} set${s.sets.length > 1 ? 's' : ''} of ${s.sets.reduce((n, x) => n + x.texts.length, 0)} texts, V-measure`,
    ),
    pairClassification: await read(
      o.evalPairClassification,
      readPairClassificationSet,
      (s) => `pair classification, ${s.labels.length} pairs, AP`,
    ),
    reranking: await read(o.evalReranking, readRerankingSet, (s) => `reranking, ${s.queries.length} queries, MAP`),
    summarization: await read(o.evalSummarization, readSummarizationSet, (s) => `summarization, ${s.texts.length} texts, cosine Spearman`),
    translation: await read(o.evalTranslation, readTranslationPairs, (s) => `translation, ${s.source.length} pairs, bitext mining F1`),
  }
}

/**
 * Every set scored (classification with MTEB's defaults: `experiments` draws, 10 unless given, of 32 training rows per
 * label, or 10 folds).
 */
export async function scoreTasks(sets: TaskSets, e: TaskEmbedding, experiments?: number): Promise<TaskResults> {
  const out: TaskResults = { classification: [], clustering: [], pairClassification: [], reranking: [], summarization: [], translation: [] }
  // Each result with the split scored, and a subset's named by its dataset and subset.
  const named = <R>(r: R, { split, subset }: Split<unknown>) => ({ ...r, ...(split ? { split } : {}), ...subset })
  for (const s of sets.classification)
    out.classification.push(named(await evaluateClassification(e.typed('Classification'), s.set, { experiments }), s))
  for (const s of sets.clustering) out.clustering.push(named(await evaluateClustering(e.typed('Clustering'), s.set), s))
  for (const s of sets.pairClassification)
    out.pairClassification.push(named(await evaluatePairClassification(e.typed('PairClassification'), s.set), s))
  for (const s of sets.reranking)
    out.reranking.push(named(await evaluateReranking(e.plain, s.set, { queryPrefix: e.queryPrefix, documentPrefix: e.documentPrefix }), s))
  for (const s of sets.summarization) out.summarization.push(named(await evaluateSummarization(e.typed('Summarization'), s.set), s))
  // Parallel sentences, both sides alike (as `simcsepp eval`); a subset's named by its dataset's folder (`file`).
  for (const s of sets.translation) {
    const r = await evaluateTranslation(e.typed('BitextMining'), s.set)
    out.translation.push({
      ...r,
      ...(s.split ? { split: s.split } : {}),
      ...(s.subset ? { file: s.subset.dataset, subset: s.subset.subset } : {}),
    })
  }
  return out
}

/** Each kind's main score (MTEB's), the measure a set of it selects the model by. */
export const MAIN_SCORE = {
  classification: 'accuracy',
  clustering: 'vMeasure',
  pairClassification: 'ap',
  reranking: 'map',
  summarization: 'cosineSpearman',
} as const

/**
 * Each task set's main score, a translation dataset's a row per language pair, then each distillation set's negative
 * MSE: the set's name (with the split scored), the measure's name, the score (a fraction; -mse).
 */
export function taskScores(r: Partial<TaskResults> & Pick<EvalInfo, 'mse'>): { set: string; measure: string; score: number }[] {
  const of = <R extends { dataset: string; split?: string; subset?: string }>(
    results: R[] | undefined,
    measure: string,
    score: (r: R) => number,
  ) => (results ?? []).map((x) => ({ set: taskSetName(x), measure, score: score(x) }))
  return [
    ...of(r.classification, SELECTION_METRIC_NAMES[MAIN_SCORE.classification], (x) => x.accuracy),
    ...of(r.clustering, SELECTION_METRIC_NAMES[MAIN_SCORE.clustering], (x) => x.vMeasure),
    ...of(r.pairClassification, SELECTION_METRIC_NAMES[MAIN_SCORE.pairClassification], (x) => x.ap),
    ...of(r.reranking, SELECTION_METRIC_NAMES[MAIN_SCORE.reranking], (x) => x.map),
    ...of(r.summarization, SELECTION_METRIC_NAMES[MAIN_SCORE.summarization], (x) => x.cosineSpearman),
    ...of(byDataset(r.translation), SELECTION_METRIC_NAMES.f1, (x) => x.f1),
    ...mseScores(r.mse).map((x) => ({ ...x, measure: SELECTION_METRIC_NAMES.negativeMse })),
  ]
}

/**
 * Each dataset's name and main score, in order: a set's own; a multilingual dataset's (its results a subset each, in a
 * row) the mean over its subsets, as MTEB aggregates them. The first one selects the model when its kind does.
 */
export function datasetScores<R extends { dataset: string; split?: string; subset?: string }>(
  results: R[],
  score: (r: R) => number,
): { set: string; score: number }[] {
  const out: { set: string; score: number }[] = []
  for (let i = 0; i < results.length;) {
    const first = results[i]
    let end = i + 1
    if (first.subset !== undefined)
      while (end < results.length && results[end].subset !== undefined && results[end].dataset === first.dataset) end++
    const group = results.slice(i, end)
    out.push(
      first.subset === undefined
        ? { set: taskSetName(first), score: score(first) }
        : {
            set: `${setLabel(first.dataset)} (${first.split}, mean of ${group.length} subsets)`,
            score: group.reduce((s, r) => s + score(r), 0) / group.length,
          },
    )
    i = end
  }
  return out
}

/** Each MSE set's name (with the split scored) and its selection score, -mse (shown ×100: sentence-transformers' negative_mse). */
export const mseScores = (mse: EvalInfo['mse']): { set: string; score: number }[] =>
  (mse ?? []).map((r) => ({ set: taskSetName({ dataset: r.file, split: r.split }), score: -r.mse }))

/** Each kind's datasets' main scores (datasetScores), keyed as TaskSets. */
export function taskMainScores(r: TaskResults): Record<keyof TaskSets, { set: string; score: number }[]> {
  return {
    classification: datasetScores(r.classification, (x) => x.accuracy),
    clustering: datasetScores(r.clustering, (x) => x.vMeasure),
    pairClassification: datasetScores(r.pairClassification, (x) => x.ap),
    reranking: datasetScores(r.reranking, (x) => x.map),
    summarization: datasetScores(r.summarization, (x) => x.cosineSpearman),
    translation: datasetScores(byDataset(r.translation), (x) => x.f1),
  }
}

/** MTEB's two averages of main scores (fractions) grouped by kind (task type): Mean (Task) and Mean (TaskType). */
export interface KindMeans {
  /** Datasets averaged, and the mean of their main scores. */
  datasets: number
  mean: number
  /** Kinds among them (those with datasets), and the mean of each kind's mean: a kind weighs the same at any size. */
  kinds: number
  meanByKind: number
}

/** The two means of `byKind`'s scores, kinds without scores left out; null when there are no scores at all. */
export function kindMeans(byKind: Record<string, number[]>): KindMeans | null {
  const kinds = Object.values(byKind).filter((s) => s.length)
  const all = kinds.flat()
  if (!all.length) return null
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  return { datasets: all.length, mean: mean(all), kinds: kinds.length, meanByKind: mean(kinds.map(mean)) }
}

/** A task result's name in tables and logs: its file's or folder's name, its subset (a language's folder), its split. */
export function taskSetName(r: { dataset: string; split?: string; subset?: string }): string {
  return setLabel(r.dataset) + (r.subset ? `/${r.subset}` : '') + (r.split ? ` (${r.split})` : '')
}
