// Pair classification (MTEB's pair classification tasks; sentence-transformers' BinaryClassificationEvaluator): is
// each pair a paraphrase (duplicate, entailment: label 1) or not (0)? Each pair's two vectors are compared by cosine
// similarity, dot product, Euclidean and Manhattan distance; for each, the best accuracy and F1 any threshold gives,
// and the average precision of ranking the pairs by it. MTEB's main score is the best of the four APs. Its files hold
// one row of lists (sentence1, sentence2, labels), or one pair per row (sentence1, sentence2, label).
import type { Embed } from '../embed/memo-embed.js'
import { embedInBatches } from '../embed/embed-texts.js'
import { pairMetrics, pairSimilarities, type PairMetrics } from './pair-metrics.js'
import { columnName, fileOfSplit, readTable, textCell, type Table } from './table.js'

export interface PairClassificationSet {
  name: string
  first: string[]
  second: string[]
  /** 0 or 1 per pair. */
  labels: Uint8Array
}

export type PairSimilarity = 'cosine' | 'dot' | 'euclidean' | 'manhattan'

export interface PairClassificationResult {
  dataset: string
  pairs: number
  /** The largest average precision of the four. */
  ap: number
  bySimilarity: Record<PairSimilarity, PairMetrics>
}

const FIRST = ['sentence1', 'sent1', 'text1']
const SECOND = ['sentence2', 'sent2', 'text2']
const LABELS = ['labels', 'label']

/** A pair classification set: a file, or a folder's `split` (default 'test'). */
export async function readPairClassificationSet(path: string, split = 'test'): Promise<PairClassificationSet> {
  const file = fileOfSplit(path, split)
  const table = await readTable(file)
  if (table.rows === 0) throw new Error(`${file}: no rows`)
  const names = [
    columnName(table, FIRST, 'first sentence'),
    columnName(table, SECOND, 'second sentence'),
    columnName(table, LABELS, 'label'),
  ]
  const [a, b, l] = names.map((n) => table.column(n))
  const first: string[] = []
  const second: string[] = []
  const labels: number[] = []
  const add = (x: unknown, y: unknown, z: unknown, i: number) => {
    first.push(textCell(table, x, i, names[0]))
    second.push(textCell(table, y, i, names[1]))
    labels.push(binary(table, z, i, names[2]))
  }
  for (let i = 0; i < table.rows; i++) {
    if (Array.isArray(a[i]) || Array.isArray(b[i]) || Array.isArray(l[i])) {
      const [xs, ys, zs] = [a[i], b[i], l[i]]
      if (!Array.isArray(xs) || !Array.isArray(ys) || !Array.isArray(zs) || xs.length !== ys.length || xs.length !== zs.length)
        throw new Error(`${file}: ${table.where(i)}: ${names.join(', ')} must be lists of one length, or all single values`)
      xs.forEach((x, k) => add(x, ys[k], zs[k], i))
    } else add(a[i], b[i], l[i], i)
  }
  if (!labels.includes(1) || !labels.includes(0)) throw new Error(`${file}: the labels must include both 0 and 1`)
  return { name: path, first, second, labels: Uint8Array.from(labels) }
}

/** A label: 0 or 1 (a number, a numeric string, a boolean or Parquet's bigint). */
function binary(table: Table, v: unknown, i: number, column: string): number {
  const x =
    typeof v === 'boolean' ? Number(v) : typeof v === 'bigint' ? Number(v) : typeof v === 'string' && v.trim() !== '' ? Number(v) : v
  if (x !== 0 && x !== 1)
    throw new Error(
      `${table.path}: ${table.where(i)}: ${column} must be 0 or 1, got ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`,
    )
  return x
}

export async function evaluatePairClassification(
  embed: Embed,
  set: PairClassificationSet,
  options: { onProgress?: (p: { done: number; total: number }) => void } = {},
): Promise<PairClassificationResult> {
  const progress = { total: 2 * set.labels.length, done: 0, onProgress: options.onProgress }
  const [a, b] = [await embedInBatches(embed, set.first, progress), await embedInBatches(embed, set.second, progress)]
  const s = pairSimilarities(a, b)
  const bySimilarity = {
    cosine: pairMetrics(s.cosine, set.labels, true),
    dot: pairMetrics(s.dot, set.labels, true),
    euclidean: pairMetrics(s.euclidean, set.labels, false),
    manhattan: pairMetrics(s.manhattan, set.labels, false),
  }
  return { dataset: set.name, pairs: set.labels.length, ap: Math.max(...Object.values(bySimilarity).map((m) => m.ap)), bySimilarity }
}
