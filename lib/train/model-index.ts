// The model card's `model-index` metadata: the saved model's evaluation results in the YAML front matter, as
// sentence-transformers writes them (its evaluators' task types and metric names, scores as fractions), so that the
// Hub shows them as the model's evaluation results and tools that read model-index (the Hub's search, leaderboards)
// find them. STS is `semantic-similarity` (pearson_cosine, spearman_cosine), retrieval `information-retrieval`
// (cosine_ndcg@10, cosine_mrr@10, cosine_recall@100), pair classification `binary-classification` (cosine_ap and the
// others' AP, max_ap: MTEB's main score), reranking `reranking` (cosine_map, cosine_mrr@10); the kinds
// sentence-transformers has no evaluator for take MTEB's type names (Classification: accuracy, f1; Clustering:
// v_measure; Summarization: cosine_spearman, cosine_pearson). Names and splits are written as JSON strings, which YAML
// reads as double-quoted scalars.
import { basename } from 'node:path'
import type { Best, EvalInfo } from './events.js'

interface Metric {
  type: string
  value: number
  name: string
}

interface Result {
  task: { type: string; name: string }
  dataset: { name: string; type: string; split?: string; config?: string }
  metrics: Metric[]
}

/** sentence-transformers' display name of a metric: its words capitalised ('cosine_ndcg@10' -> 'Cosine Ndcg@10'). */
const displayName = (type: string) =>
  type
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join(' ')

const metric = (type: string, value: number): Metric => ({ type, value, name: displayName(type) })

/** A dataset's `type`: its name in lower case, runs of other characters as '-' (sentence-transformers' 'sts-dev'). */
const datasetType = (name: string) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '') || 'dataset'

const dataset = (name: string, split?: string, config?: string): Result['dataset'] => ({
  name,
  type: datasetType(name),
  ...(split ? { split } : {}),
  ...(config ? { config } : {}),
})

/**
 * A number as YAML 1.1 (PyYAML, which huggingface_hub reads metadata with) reads it as a float: JavaScript writes
 * 1e-7 without a point, which YAML 1.1 takes for a string.
 */
export const yamlNumber = (v: number) => {
  const s = String(v)
  return s.includes('e') && !s.includes('.') ? s.replace('e', '.0e') : s
}

/** The results of evaluation `e`, in sentence-transformers' model-index terms. */
export function modelIndexResults(e: EvalInfo): Result[] {
  const sts = { type: 'semantic-similarity', name: 'Semantic Similarity' }
  const out: Result[] = []
  for (const r of e.results)
    out.push({
      task: sts,
      dataset: dataset(basename(r.file)),
      metrics: [
        ...(r.pearson !== undefined ? [metric('pearson_cosine', r.pearson / 100)] : []),
        metric('spearman_cosine', r.spearman / 100),
      ],
    })
  // Matryoshka: the first file on the vectors cut to each size, as sentence-transformers' evaluator per dimension.
  for (const [d, s] of Object.entries(e.dimSpearman ?? {}))
    out.push({ task: sts, dataset: dataset(`${basename(e.results[0].file)} (${d} dims)`), metrics: [metric('spearman_cosine', s / 100)] })
  for (const r of e.retrieval ?? [])
    out.push({
      task: { type: 'information-retrieval', name: 'Information Retrieval' },
      dataset: dataset(basename(r.dataset), r.split),
      metrics: [metric('cosine_ndcg@10', r.ndcgAt10), metric('cosine_mrr@10', r.mrrAt10), metric('cosine_recall@100', r.recallAt100)],
    })
  // A task set by its file's or folder's name; a multilingual dataset's subset as the dataset's config.
  const taskDataset = (r: { dataset: string; split?: string; subset?: string }) => dataset(basename(r.dataset), r.split, r.subset)
  for (const r of e.classification ?? [])
    out.push({
      task: { type: 'Classification', name: 'Classification' },
      dataset: taskDataset(r),
      metrics: [metric('accuracy', r.accuracy), metric('f1', r.f1)],
    })
  for (const r of e.clustering ?? [])
    out.push({ task: { type: 'Clustering', name: 'Clustering' }, dataset: taskDataset(r), metrics: [metric('v_measure', r.vMeasure)] })
  for (const r of e.pairClassification ?? [])
    out.push({
      task: { type: 'binary-classification', name: 'Binary Classification' },
      dataset: taskDataset(r),
      metrics: [...Object.entries(r.bySimilarity).map(([sim, m]) => metric(`${sim}_ap`, m.ap)), metric('max_ap', r.ap)],
    })
  for (const r of e.reranking ?? [])
    out.push({
      task: { type: 'reranking', name: 'Reranking' },
      dataset: taskDataset(r),
      metrics: [metric('cosine_map', r.map), metric('cosine_mrr@10', r.mrr10)],
    })
  for (const r of e.summarization ?? [])
    out.push({
      task: { type: 'Summarization', name: 'Summarization' },
      dataset: taskDataset(r),
      metrics: [metric('cosine_spearman', r.cosineSpearman), metric('cosine_pearson', r.cosinePearson)],
    })
  return out
}

/**
 * The front matter's `metrics` and `model-index` lines for the model saved: the best evaluation's results (the
 * model in the folder is that step's), else the last evaluation's; none without evaluations. Metrics that are not
 * numbers (NaN: constant vectors) are left out, as YAML's .nan would not be read as a score.
 */
export function modelIndexLines(name: string, evals: EvalInfo[], best: Best): string[] {
  const e = (best && evals.find((x) => x.step === best.step)) || evals.at(-1)
  if (!e) return []
  const results = modelIndexResults(e)
    .map((r) => ({ ...r, metrics: r.metrics.filter((m) => Number.isFinite(m.value)) }))
    .filter((r) => r.metrics.length)
  if (!results.length) return []
  const q = (s: string) => JSON.stringify(s)
  return [
    'metrics:',
    ...[...new Set(results.flatMap((r) => r.metrics.map((m) => m.type)))].map((t) => `- ${q(t)}`),
    'model-index:',
    `- name: ${q(name)}`,
    '  results:',
    ...results.flatMap((r) => [
      '  - task:',
      `      type: ${q(r.task.type)}`,
      `      name: ${q(r.task.name)}`,
      '    dataset:',
      ...Object.entries(r.dataset).map(([k, v]) => `      ${k}: ${q(v)}`),
      '    metrics:',
      ...r.metrics.flatMap((m) => [`    - type: ${q(m.type)}`, `      value: ${yamlNumber(m.value)}`, `      name: ${q(m.name)}`]),
    ]),
  ]
}
