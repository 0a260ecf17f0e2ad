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
import type { TranslationResult } from '../eval/translation.js'
import type { Best, EvalInfo, TaskSplit } from './events.js'
import { hubSetNaming } from '../hub/hub-model.js'

interface Metric {
  type: string
  value: number
  name: string
}

export interface Result {
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

/** What an evaluation's results are named by: a file's or folder's own name and type, and a suffix for the names. */
export interface ResultNaming {
  /** A path's dataset name, type and split where not its own name (a Hub dataset's files: its id as the type). */
  source?: (path: string) => { name: string; type?: string; split?: string } | undefined
  /** Added to each dataset's name (' (256 dims)': the vectors cut to a size). */
  suffix?: string
}

/** The evaluations' results that the model-index holds (an EvalInfo's, and `simcsepp eval`'s translation). */
export type IndexedEvaluation = Pick<
  EvalInfo,
  'results' | 'dimSpearman' | 'retrieval' | 'classification' | 'clustering' | 'pairClassification' | 'reranking' | 'summarization' | 'mse'
> & { translation?: (TranslationResult & TaskSplit)[] }

/**
 * A number as YAML 1.1 (PyYAML, which huggingface_hub reads metadata with) reads it as a float: JavaScript writes
 * 1e-7 without a point, which YAML 1.1 takes for a string.
 */
export const yamlNumber = (v: number) => {
  const s = String(v)
  return s.includes('e') && !s.includes('.') ? s.replace('e', '.0e') : s
}

/** The results of evaluation `e`, in sentence-transformers' model-index terms. */
export function modelIndexResults(e: IndexedEvaluation, naming: ResultNaming = {}): Result[] {
  const dataset = (path: string, split?: string, config?: string, suffix = ''): Result['dataset'] => {
    const own: ReturnType<NonNullable<ResultNaming['source']>> = naming.source?.(path) ?? hubSetNaming(path) ?? undefined
    const name = (own?.name ?? basename(path)) + suffix + (naming.suffix ?? '')
    const scored = split ?? own?.split
    return { name, type: own?.type ?? datasetType(name), ...(scored ? { split: scored } : {}), ...(config ? { config } : {}) }
  }
  const sts = { type: 'semantic-similarity', name: 'Semantic Similarity' }
  const out: Result[] = []
  for (const r of e.results)
    out.push({
      task: sts,
      dataset: dataset(r.file),
      metrics: [
        ...(r.pearson !== undefined ? [metric('pearson_cosine', r.pearson / 100)] : []),
        metric('spearman_cosine', r.spearman / 100),
      ],
    })
  // Matryoshka: the first file on the vectors cut to each size, as sentence-transformers' evaluator per dimension.
  for (const [d, s] of Object.entries(e.dimSpearman ?? {}))
    out.push({
      task: sts,
      dataset: dataset(e.results[0].file, undefined, undefined, ` (${d} dims)`),
      metrics: [metric('spearman_cosine', s / 100)],
    })
  for (const r of e.retrieval ?? [])
    out.push({
      task: { type: 'information-retrieval', name: 'Information Retrieval' },
      dataset: dataset(r.dataset, r.split),
      metrics: [metric('cosine_ndcg@10', r.ndcgAt10), metric('cosine_mrr@10', r.mrrAt10), metric('cosine_recall@100', r.recallAt100)],
    })
  // A task set by its file's or folder's name; a multilingual dataset's subset as the dataset's config.
  const taskDataset = (r: { dataset: string; split?: string; subset?: string }) => dataset(r.dataset, r.split, r.subset)
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
  // (sentence-transformers' TranslationEvaluator: the accuracy each way and their mean)
  for (const r of e.translation ?? [])
    out.push({
      task: { type: 'translation', name: 'Translation' },
      dataset: dataset(r.file, r.split, r.subset),
      metrics: [
        metric('src2trg_accuracy', r.sourceToTarget),
        metric('trg2src_accuracy', r.targetToSource),
        metric('mean_accuracy', r.accuracy),
      ],
    })
  for (const r of e.summarization ?? [])
    out.push({
      task: { type: 'Summarization', name: 'Summarization' },
      dataset: taskDataset(r),
      metrics: [metric('cosine_spearman', r.cosineSpearman), metric('cosine_pearson', r.cosinePearson)],
    })
  // (sentence-transformers' MSEEvaluator: -100 × the MSE, greater is better)
  for (const r of e.mse ?? [])
    out.push({
      task: { type: 'knowledge-distillation', name: 'Knowledge Distillation' },
      dataset: dataset(r.file, r.split),
      metrics: [metric('negative_mse', -100 * r.mse)],
    })
  return out
}

/** A result's identity in the model-index: its task type, dataset name, split and config (a later result replaces it). */
export const resultKey = (r: unknown): string | null => {
  const { task, dataset } = (r ?? {}) as { task?: { type?: unknown }; dataset?: { name?: unknown; split?: unknown; config?: unknown } }
  if (typeof task?.type !== 'string' || typeof dataset?.name !== 'string') return null
  return JSON.stringify([task.type, dataset.name, dataset.split ?? null, dataset.config ?? null])
}

/**
 * `results` with each of `added` in place of the one it replaces (same resultKey), the others after them in their
 * order: the model-index after an evaluation of some of its datasets again and of others for the first time.
 */
export function mergeResults(results: unknown[], added: Result[]): { results: unknown[]; replaced: number } {
  const index = new Map(added.map((r, i) => [resultKey(r), i]))
  const used = new Set<number>()
  const merged = results.map((r) => {
    const i = index.get(resultKey(r))
    if (i === undefined || used.has(i)) return r
    used.add(i)
    return added[i]
  })
  return { results: [...merged, ...added.filter((_, i) => !used.has(i))], replaced: used.size }
}

/** Results with their metrics that are not numbers (NaN: constant vectors) left out, as YAML's .nan is no score. */
export const finiteResults = (results: Result[]): Result[] =>
  results.map((r) => ({ ...r, metrics: r.metrics.filter((m) => Number.isFinite(m.value)) })).filter((r) => r.metrics.length)

/**
 * A JSON value as block YAML at `indent`, in the style of PyYAML's dump (sequences inside a mapping at the key's
 * indent): strings as JSON strings, numbers as YAML 1.1 floats (yamlNumber).
 */
function yamlLines(key: string, v: unknown, indent: string): string[] {
  const head = `${indent}${key}:`
  if (v !== null && typeof v === 'object' && Object.keys(v).length) {
    if (!Array.isArray(v)) return [head, ...Object.entries(v).flatMap(([k, x]) => yamlLines(k, x, indent + '  '))]
    return [head, ...v.flatMap((x) => itemLines(x, indent))]
  }
  return [`${head} ${yamlScalar(v)}`]
}

/** One item of a sequence at `indent`: '- ' then the value (a mapping's first key on the dash's line). */
function itemLines(v: unknown, indent: string): string[] {
  if (v === null || typeof v !== 'object' || !Object.keys(v).length) return [`${indent}- ${yamlScalar(v)}`]
  const lines = Array.isArray(v)
    ? v.flatMap((x) => itemLines(x, indent + '  '))
    : Object.entries(v).flatMap(([k, x]) => yamlLines(k, x, indent + '  '))
  return [`${indent}- ${lines[0].slice(indent.length + 2)}`, ...lines.slice(1)]
}

function yamlScalar(v: unknown): string {
  if (v instanceof Date) return v.toISOString() // (a YAML 1.1 timestamp read from a card)
  if (typeof v === 'number') return Number.isFinite(v) ? yamlNumber(v) : Number.isNaN(v) ? '.nan' : v > 0 ? '.inf' : '-.inf'
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return '[]'
  if (v !== null && typeof v === 'object') return '{}'
  return 'null'
}

/**
 * The front matter's `metrics` and `model-index` lines of `results` (theirs and any kept from a card, as parsed):
 * `metrics` lists every metric type once (with `metrics`' own entries first), as sentence-transformers writes it.
 */
export function indexLines(name: string, results: unknown[], metrics: unknown[] = [], entry: Record<string, unknown> = {}): string[] {
  const types = results.flatMap((r) => {
    const m = (r as { metrics?: unknown }).metrics
    return Array.isArray(m) ? m.map((x) => (x as { type?: unknown })?.type).filter((t) => typeof t === 'string') : []
  })
  return [...yamlLines('metrics', [...new Set([...metrics, ...types])], ''), ...yamlLines('model-index', [{ ...entry, name, results }], '')]
}

/**
 * The front matter's `metrics` and `model-index` lines for the model saved: the best evaluation's results (the
 * model in the folder is that step's), else the last evaluation's; none without evaluations.
 */
export function modelIndexLines(name: string, evals: EvalInfo[], best: Best): string[] {
  const e = (best && evals.find((x) => x.step === best.step)) || evals.at(-1)
  if (!e) return []
  const results = finiteResults(modelIndexResults(e))
  return results.length ? indexLines(name, results) : []
}
