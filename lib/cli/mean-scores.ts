// The averages MTEB's leaderboard ranks models by, over what one `simcsepp eval` scored: the mean of every dataset's
// main score ("Mean (Task)") and the mean over task types of each type's mean ("Mean (TaskType)", where a type with
// many datasets weighs as much as one with a single dataset). Main scores as MTEB's, fractions: STS Spearman (cosine),
// retrieval nDCG@10 (the exact search's), bitext mining (translation pairs) F1, classification accuracy, clustering
// V-measure, pair classification AP (the best of the four similarities), reranking MAP, summarization cosine Spearman;
// a multilingual dataset (a folder per subset) counts once, by its subsets' mean, as MTEB aggregates it.
import { taskMainScores as datasetMainScores, kindMeans } from '../train/task-evaluation.js'
import type { EvalCommandResults } from './eval-card.js'
import { formatTable } from './tables.js'

export interface MainScoreMeans {
  /** Datasets averaged, and the mean of their main scores. */
  datasets: number
  mean: number
  /** Task types among them, and the mean of each type's mean. */
  taskTypes: number
  meanByTaskType: number
}

/** Each task type's datasets' main scores, in MTEB's type names (types without datasets left out). */
export function mainScoresByType(r: EvalCommandResults): Record<string, number[]> {
  const tasks = datasetMainScores(r)
  const scores = (list: { score: number }[]) => list.map((x) => x.score)
  const byType: Record<string, number[]> = {
    STS: (r.sts?.results ?? []).map((x) => x.spearman / 100),
    Retrieval: r.retrieval.filter((x) => x.search === 'exact').map((x) => x.ndcgAt10),
    BitextMining: scores(tasks.translation),
    Classification: scores(tasks.classification),
    Clustering: scores(tasks.clustering),
    PairClassification: scores(tasks.pairClassification),
    Reranking: scores(tasks.reranking),
    Summarization: scores(tasks.summarization),
  }
  return Object.fromEntries(Object.entries(byType).filter(([, s]) => s.length))
}

/** The two means of `byType`'s scores; null with fewer than two datasets (the mean would be the one score). */
export function mainScoreMeans(byType: Record<string, number[]>): MainScoreMeans | null {
  const m = kindMeans(byType)
  if (!m || m.datasets < 2) return null
  return { datasets: m.datasets, mean: m.mean, taskTypes: m.kinds, meanByTaskType: m.meanByKind }
}

/** The means as a table (×100), the last of `simcsepp eval`'s, in MTEB's leaderboard's names. */
export function meansTable(m: MainScoreMeans): string {
  return formatTable(
    ['mean of main scores', 'over', 'mean'],
    [
      ['Mean (Task)', `${m.datasets} datasets`, (100 * m.mean).toFixed(2)],
      ['Mean (TaskType)', `${m.taskTypes} task type${m.taskTypes === 1 ? '' : 's'}`, (100 * m.meanByTaskType).toFixed(2)],
    ],
  )
}

/** The means as columns of the table of a row per Matryoshka size. */
export const meansColumns = (m: MainScoreMeans | null) =>
  m
    ? [
        { name: 'Mean (Task)', value: m.mean },
        { name: 'Mean (TaskType)', value: m.meanByTaskType },
      ]
    : []
