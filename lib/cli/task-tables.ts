// The tables `simcsepp eval` prints for MTEB's other task kinds: classification, clustering, pair classification,
// reranking and summarization (scores ×100, as MTEB's leaderboard shows them).
import type { ClassificationResult } from '../eval/classification.js'
import type { ClusteringResult } from '../eval/clustering.js'
import type { PairClassificationResult } from '../eval/pair-classification.js'
import type { RerankingResult } from '../eval/reranking.js'
import type { SummarizationResult } from '../eval/summarization.js'
import { byDataset, type TranslationResult } from '../eval/translation.js'
import { setLabel } from '../hub/hub-model.js'
import { formatTable } from './tables.js'
import { taskScores, taskSetName } from '../train/task-evaluation.js'

const pct = (x: number) => (100 * x).toFixed(2)

/** Accuracy (with its spread over the fits), macro and weighted F1, per dataset. */
export function classificationTable(results: ClassificationResult[]): string {
  return formatTable(
    ['classification', 'classes', 'train', 'test', 'fits', 'accuracy', '+-', 'F1', 'F1 weighted'],
    results.map((r) => [
      taskSetName(r) + (r.protocol === 'cross-validation' ? ' (CV)' : '') + (r.converged ? '' : ' *'),
      r.classes,
      r.protocol === 'cross-validation' ? '' : r.samplesPerLabel === null ? r.trainRows : `${r.samplesPerLabel}/label`,
      r.testRows,
      r.fits,
      pct(r.accuracy),
      pct(r.accuracyStd),
      pct(r.f1),
      pct(r.f1Weighted),
    ]),
  )
}

export function clusteringTable(results: ClusteringResult[]): string {
  return formatTable(
    ['clustering', 'sets', 'texts', 'V-measure', 'homogeneity', 'completeness'],
    results.map((r) => [taskSetName(r), r.sets, r.texts, pct(r.vMeasure), pct(r.homogeneity), pct(r.completeness)]),
  )
}

/** The best AP of the four comparisons (MTEB's main score), then cosine's AP, accuracy and F1. */
export function pairClassificationTable(results: PairClassificationResult[]): string {
  return formatTable(
    ['pair classification', 'pairs', 'AP (max)', 'cos AP', 'cos accuracy', 'cos F1'],
    results.map((r) => {
      const c = r.bySimilarity.cosine
      return [taskSetName(r), r.pairs, pct(r.ap), pct(c.ap), pct(c.accuracy), pct(c.f1)]
    }),
  )
}

export function rerankingTable(results: RerankingResult[]): string {
  return formatTable(
    ['reranking', 'queries', 'MAP', 'MRR@10'],
    results.map((r) => [taskSetName(r), r.queries, pct(r.map), pct(r.mrr10)]),
  )
}

/** Cosine's Spearman (MTEB's main score) and Pearson, dot product's, ×100, over the texts with differing scores. */
export function summarizationTable(results: SummarizationResult[]): string {
  return formatTable(
    ['summarization', 'texts', 'scored', 'cos Spearman', 'cos Pearson', 'dot Spearman', 'dot Pearson'],
    results.map((r) => [
      taskSetName(r),
      r.texts,
      r.scored,
      pct(r.cosineSpearman),
      pct(r.cosinePearson),
      pct(r.dotSpearman),
      pct(r.dotPearson),
    ]),
  )
}

/** A multilingual dataset's subset: `dataset` is then the dataset's folder, `subset` the subset's (a language's). */
export type InSubset<R> = R & { subset?: string }

/**
 * Datasets scored per subset (MTEB's multilingual datasets: a folder per language): the mean of each one's main score
 * over its subsets, as MTEB aggregates them; null when no result came from a subset.
 */
export function subsetMeansTable(r: {
  classification: InSubset<ClassificationResult>[]
  clustering: InSubset<ClusteringResult>[]
  pairClassification: InSubset<PairClassificationResult>[]
  reranking: InSubset<RerankingResult>[]
  summarization: InSubset<SummarizationResult>[]
  translation?: InSubset<TranslationResult>[]
}): string | null {
  const rows: (string | number)[][] = []
  const add = <R extends { dataset: string; subset?: string }>(kind: string, results: R[], measure: string, score: (x: R) => number) => {
    const groups = new Map<string, number[]>()
    for (const x of results) if (x.subset !== undefined) groups.set(x.dataset, [...(groups.get(x.dataset) ?? []), score(x)])
    for (const [dataset, scores] of groups)
      rows.push([setLabel(dataset), kind, scores.length, measure, pct(scores.reduce((a, b) => a + b, 0) / scores.length)])
  }
  add('classification', r.classification, 'accuracy', (x) => x.accuracy)
  add('clustering', r.clustering, 'V-measure', (x) => x.vMeasure)
  add('pair classification', r.pairClassification, 'AP', (x) => x.ap)
  add('reranking', r.reranking, 'MAP', (x) => x.map)
  add('summarization', r.summarization, 'cosine Spearman', (x) => x.cosineSpearman)
  add('bitext mining', byDataset(r.translation), 'F1', (x) => x.f1)
  return rows.length ? formatTable(['subsets of', 'task', 'subsets', 'measure', 'mean'], rows) : null
}

/** Each task's main score under a column name, for the table of a row per Matryoshka size. */
export function taskMainScores(r: {
  classification: ClassificationResult[]
  clustering: ClusteringResult[]
  pairClassification: PairClassificationResult[]
  reranking: RerankingResult[]
  summarization: SummarizationResult[]
}): { name: string; value: number }[] {
  const { classification, clustering, pairClassification, reranking, summarization } = r // (the table has translation's own columns)
  return taskScores({ classification, clustering, pairClassification, reranking, summarization }).map((s) => ({
    name: `${s.set} ${s.measure}`,
    value: s.score,
  }))
}
