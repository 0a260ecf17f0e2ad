// Evaluation during training, with model selection: every evaluation scores each STS file, each retrieval set (a
// BEIR folder: nDCG@10, MRR@10, Recall@100 of exact cosine search) and each set of MTEB's other task kinds
// (task-evaluation.ts), and when the selection score (the main score of the first set of the selecting kind: by
// default the first STS file's Spearman, else the first retrieval set's nDCG@10, else the first task set's; or the
// mean of every set's main score) beats the best so far, the model is saved into the output directory (so with
// evaluation on, the output holds the best model rather than the last one).
import type { BertModel } from '../model/bert.js'
import type { Tokenizer } from '../tokenizer.js'
import { evaluateSts, readStsFile, type EmbedFn, type StsPair } from '../eval/sts.js'
import { readBeirDataset, type RetrievalDataset } from '../eval/beir.js'
import { evaluateRetrieval, type RetrievalResult } from '../eval/retrieval.js'
import { memoEmbed } from '../embed/memo-embed.js'
import { EmbeddingEngine, longestOf, paddedBatch, tokenizePacked } from '../embed/engine.js'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { SELECTION_METRIC_NAMES, SELECTION_METRICS, type Best, type EvalInfo, type RetrievalEval, type SelectionMetric } from './events.js'
import { SELECT_BY, type SelectBy } from './options.js'
import { setLabel } from '../hub/hub-model.js'
import { evaluateMse, type MseSentences } from '../eval/mse.js'
import type { TeacherVectors } from './teacher.js'
import {
  kindMeans,
  MAIN_SCORE,
  mseScores,
  NO_TASKS,
  scoreTasks,
  taskMainScores,
  type TaskResults,
  type TaskSets,
  type TaskType,
} from './task-evaluation.js'
import type { Pooling } from '../model/pooling.js'

export interface EvalSet {
  file: string
  pairs: StsPair[]
}

export async function readEvalSets(files: string[]): Promise<EvalSet[]> {
  const sets: EvalSet[] = []
  for (const file of files) sets.push({ file, pairs: await readStsFile(file) })
  return sets
}

/**
 * The retrieval sets of evalRetrieval: each BEIR folder with the qrels of its dev split when it has one (model
 * selection on a test split would tune to the test), else of its test split.
 */
export async function readRetrievalSets(dirs: string[]): Promise<RetrievalDataset[]> {
  const sets: RetrievalDataset[] = []
  for (const dir of dirs) sets.push(await readBeirDataset(dir, existsSync(join(dir, 'qrels', 'dev.tsv')) ? 'dev' : 'test'))
  return sets
}

/** A best evaluation's selection score, and what it measures. */
export function bestScore(best: NonNullable<Best>): { metric: SelectionMetric; score: number } {
  const metric = SELECTION_METRICS.find((m) => m in best) ?? 'spearman'
  return { metric, score: (best as Record<string, number>)[metric] }
}

/** The best evaluation of `metric` at `step`. */
export function bestOf(step: number, metric: SelectionMetric, score: number): NonNullable<Best> {
  return { step, [metric]: score } as NonNullable<Best>
}

/** A selection score as people read it: its measure's name and the score ×100 (Spearman is kept ×100 already). */
export function formatScore(metric: SelectionMetric, score: number): string {
  return `${metric === 'spearman' ? 'STS ' : ''}${SELECTION_METRIC_NAMES[metric]} ${(metric === 'spearman' ? score : 100 * score).toFixed(2)}`
}

/** The measure each kind of evaluation set selects the model by. */
const KIND_METRIC: Record<SelectBy, SelectionMetric> = {
  sts: 'spearman',
  retrieval: 'ndcgAt10',
  classification: MAIN_SCORE.classification,
  clustering: MAIN_SCORE.clustering,
  'pair-classification': MAIN_SCORE.pairClassification,
  reranking: MAIN_SCORE.reranking,
  summarization: MAIN_SCORE.summarization,
  translation: 'f1',
  mse: 'negativeMse',
  mean: 'mean',
  'mean-type': 'meanByType',
}

/**
 * Sentence vectors of the model as it is now (eval mode, no dropout), 128 sentences per pass, longest first as
 * SentenceEncoder batches them (each pass padded to its longest sentence: far less padding than in input order, and
 * a sentence's vector does not depend on the others in its pass, but for float32 rounding).
 */
export function modelEmbedder(model: BertModel, tokenizer: Tokenizer, maxLen: number, pooling: Pooling): EmbedFn {
  return async (sentences: string[]) => {
    const tok = await tokenizePacked(tokenizer, sentences, maxLen)
    const vecs: Float32Array[] = new Array<Float32Array>(sentences.length)
    for (const indices of EmbeddingEngine.batches(tok, 128, true)) {
      const z = model.embed(paddedBatch(tok, indices, longestOf(tok, indices), tokenizer.padTokenId), pooling)
      const flat = z.toFloat32Array()
      z.dispose()
      const h = z.shape[1] // the model's embeddingDim: its Dense modules' output where it has them
      indices.forEach((i, r) => (vecs[i] = flat.slice(r * h, (r + 1) * h)))
    }
    return vecs
  }
}

/**
 * Whether Spearman `a` beats `b`. NaN (constant vectors: no ranking) loses to any number, so a first
 * NaN evaluation does not block every later, real improvement (`x > NaN` is false).
 */
export function betterScore(a: number, b: number): boolean {
  if (Number.isNaN(a)) return false
  return Number.isNaN(b) || a > b
}

/** The sets an Evaluator scores. */
export interface EvaluationSets {
  /** STS files. */
  sts: EvalSet[]
  /** Retrieval sets (readRetrievalSets). */
  retrieval?: RetrievalDataset[]
  /** MTEB's other task kinds, parallel sentences among them (readTaskSets). */
  tasks?: TaskSets
  /** Distillation's sets (readMseSentences, with the split read) and the teacher whose vectors they are measured against. */
  mse?: { sets: (MseSentences & { split?: string })[]; teacher: TeacherVectors }
}

export interface EvaluatorOptions {
  /** Matryoshka training's sizes below the hidden size: the first STS file is also scored on the vectors cut to each. */
  cutDims?: number[]
  /**
   * What texts are prefixed with, as the saved model's encode, encodeQuery and encodeDocument will: queries and
   * documents of the retrieval and reranking sets (the model's query and document prompts), and the texts of each
   * symmetric task type, STS's included (its prompt of that name, else the default prompt).
   */
  prefixes?: {
    queryPrefix?: string
    documentPrefix?: string
    sentencePrefix?: string
    typePrefixes?: Partial<Record<TaskType, string>>
  }
  /** The kind whose first set selects the model; default the first kind with sets (sts, retrieval, classification, ...). */
  selectBy?: SelectBy
  /** Classification sets' draws (MTEB's 10 unless given). */
  experiments?: number
}

export class Evaluator {
  private readonly sets: EvalSet[]
  private readonly retrievalSets: RetrievalDataset[]
  private readonly tasks: TaskSets
  private readonly mse: NonNullable<EvaluationSets['mse']> | null
  /** The teacher's vectors of each MSE set's sources: computed at the first evaluation (they do not change). */
  private mseTargets: Float32Array[] | null = null
  /** The kind of set that selects the model. */
  readonly selectBy: SelectBy

  constructor(
    sets: EvaluationSets,
    private readonly embed: EmbedFn,
    /** Saves the current model as the best one. */
    private readonly saveBest: () => Promise<void>,
    /** The best evaluation so far (a resumed run's, or none; one of another selection metric is set aside). */
    public best: Best,
    private readonly options: EvaluatorOptions = {},
  ) {
    this.sets = sets.sts
    this.retrievalSets = sets.retrieval ?? []
    this.tasks = sets.tasks ?? NO_TASKS
    this.mse = sets.mse?.sets.length ? sets.mse : null
    const counts: Record<SelectBy, number> = {
      sts: this.sets.length,
      retrieval: this.retrievalSets.length,
      classification: this.tasks.classification.length,
      clustering: this.tasks.clustering.length,
      'pair-classification': this.tasks.pairClassification.length,
      reranking: this.tasks.reranking.length,
      summarization: this.tasks.summarization.length,
      translation: this.tasks.translation.length,
      mse: this.mse?.sets.length ?? 0,
      mean: 0,
      'mean-type': 0,
    }
    counts.mean = counts['mean-type'] = Object.values(counts).reduce((a, b) => a + b, 0) - counts.mse // (MSE is no MTEB task)
    this.selectBy = options.selectBy ?? SELECT_BY.find((k) => counts[k] > 0) ?? 'sts'
    if (options.selectBy !== undefined && counts[options.selectBy] === 0)
      throw new TypeError(`train: selectBy ${options.selectBy} has no sets`)
    if (best && bestScore(best).metric !== this.metric) this.best = null
  }

  /** What selects the model: the main score of the first set of the selecting kind, or the mean of every set's. */
  get metric(): SelectionMetric {
    return KIND_METRIC[this.selectBy]
  }

  /** Scores every set at `step`, saving the model when it is the best so far (by the selection score, whole vectors). */
  async evaluate(step: number): Promise<EvalInfo> {
    const results: EvalInfo['results'] = []
    const { cutDims = [], prefixes = {} } = this.options
    const prefixed = (prefix: string): EmbedFn => (prefix ? (s) => this.embed(s.map((x) => prefix + x)) : this.embed)
    const sentences = prefixed(prefixes.sentencePrefix ?? '')
    const typed = (type: TaskType) => (prefixes.typePrefixes?.[type] !== undefined ? prefixed(prefixes.typePrefixes[type]) : sentences)
    const embed = memoEmbed(typed('STS'))
    for (const set of this.sets) {
      const r = await evaluateSts(set === this.sets[0] ? embed.full : typed('STS'), set.pairs)
      results.push({ file: set.file, pairs: r.pairs, spearman: r.spearman, pearson: r.pearson })
    }
    const dimSpearman: Record<string, number> = {}
    if (this.sets.length) for (const d of cutDims) dimSpearman[d] = (await evaluateSts(embed.cut(d), this.sets[0].pairs)).spearman
    const retrieval: RetrievalEval[] = []
    for (const data of this.retrievalSets) {
      const r = await evaluateRetrieval(this.embed, data, {
        queryPrefix: prefixes.queryPrefix,
        documentPrefix: prefixes.documentPrefix,
      })
      retrieval.push(retrievalEval(r))
    }
    const tasks = await scoreTasks(
      this.tasks,
      { typed, plain: this.embed, queryPrefix: prefixes.queryPrefix, documentPrefix: prefixes.documentPrefix },
      this.options.experiments,
    )
    // Distillation: the model's vectors of each set's targets against the teacher's of its sources (sentence-transformers'
    // MSEEvaluator, whose encode applies the default prompt, as `sentences` does).
    const mse: NonNullable<EvalInfo['mse']> = []
    if (this.mse) {
      const { sets, teacher } = this.mse
      this.mseTargets ??= await Promise.all(sets.map((s) => teacher(s.source)))
      for (const [i, s] of sets.entries())
        mse.push({ ...(await evaluateMse(sentences, this.mseTargets[i], s)), ...(s.split ? { split: s.split } : {}) })
    }
    const selection = this.selection(results, retrieval, tasks, mse)
    const isBest = !this.best || betterScore(selection.score, bestScore(this.best).score)
    if (isBest) {
      this.best = bestOf(step, this.metric, selection.score)
      await this.saveBest()
    }
    const present = Object.fromEntries(Object.entries(tasks).filter(([, r]) => r.length))
    return {
      type: 'eval',
      step,
      results,
      ...(results.length ? { average: results.reduce((a, r) => a + r.spearman, 0) / results.length, spearman: results[0].spearman } : {}),
      ...(results.length && cutDims.length ? { dimSpearman } : {}),
      ...(retrieval.length ? { retrieval } : {}),
      ...present,
      ...(mse.length ? { mse } : {}),
      selection,
      best: isBest,
    }
  }

  /**
   * The selecting set's name and score in this evaluation's results; with selectBy 'mean', the mean of every dataset's
   * main score as a fraction (STS Spearman / 100; a multilingual dataset once, by its subsets' mean), MTEB's Mean (Task);
   * with 'mean-type', the mean of each kind's mean (Mean (TaskType)).
   */
  private selection(
    sts: EvalInfo['results'],
    retrieval: RetrievalEval[],
    tasks: TaskResults,
    mse: NonNullable<EvalInfo['mse']>,
  ): NonNullable<EvalInfo['selection']> {
    const t = taskMainScores(tasks)
    if (this.selectBy === 'mse') return { ...mseScores(mse)[0], metric: this.metric }
    const byKind: Record<Exclude<SelectBy, 'mse' | 'mean' | 'mean-type'>, { set: string; score: number }[]> = {
      sts: sts.map((r) => ({ set: setLabel(r.file), score: r.spearman })),
      retrieval: retrieval.map((r) => ({ set: `${setLabel(r.dataset)} (${r.split})`, score: r.ndcgAt10 })),
      classification: t.classification,
      clustering: t.clustering,
      'pair-classification': t.pairClassification,
      reranking: t.reranking,
      summarization: t.summarization,
      translation: t.translation,
    }
    if (this.selectBy !== 'mean' && this.selectBy !== 'mean-type') return { ...byKind[this.selectBy][0], metric: this.metric }
    const fractions = Object.entries(byKind).map(([kind, scores]) => [kind, scores.map((s) => (kind === 'sts' ? s.score / 100 : s.score))])
    const m = kindMeans(Object.fromEntries(fractions))
    if (!m) throw new Error('no evaluation set to select by') // the options refuse a mean without sets
    const set = `${m.datasets} set${m.datasets > 1 ? 's' : ''}`
    if (this.selectBy === 'mean') return { set, metric: 'mean', score: m.mean }
    return { set: `${set}, ${m.kinds} kind${m.kinds > 1 ? 's' : ''}`, metric: 'meanByType', score: m.meanByKind }
  }
}

/** What an evaluation records of a retrieval set's result: its headline measures (the full table is `simcsepp eval`'s). */
export const retrievalEval = (r: RetrievalResult): RetrievalEval => ({
  dataset: r.dataset,
  split: r.split,
  queries: r.queries,
  documents: r.documents,
  ndcgAt10: r.ndcgAt10,
  mrrAt10: r.scores.mrr[10],
  recallAt100: r.scores.recall[100],
})
