// Triplets written in the formats supervised training reads back (pairs.ts): CSV or TSV with the header
// sent0,sent1,hard_neg (a field holding the delimiter, a quote, a line break or edge spaces is quoted, its quotes
// doubled: RFC 4180, as csv.ts parses it), or JSONL objects with anchor, positive and negative. And n-tuples,
// sentence-transformers' mine_hard_negatives "n-tuple" output: each (anchor, positive) once with its k
// negatives, columns anchor,positive,negative_1,...,negative_k (the same names as JSONL keys).
import type { MinedTriplet } from './mine.js'

export type TripletFormat = 'csv' | 'tsv' | 'jsonl'

function field(s: string, delimiter: string): string {
  return s.includes(delimiter) || /["\n\r]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s
}

/** The file's text: a header line (CSV, TSV), then one line (or quoted record) per triplet. */
export function formatTriplets(triplets: readonly MinedTriplet[], format: TripletFormat): string {
  if (format === 'jsonl')
    return triplets.map((t) => JSON.stringify({ anchor: t.anchor, positive: t.positive, negative: t.negative })).join('\n') + '\n'
  const d = format === 'csv' ? ',' : '\t'
  const rows = triplets.map((t) => [t.anchor, t.positive, t.negative].map((s) => field(s, d)).join(d))
  return ['sent0', 'sent1', 'hard_neg'].join(d) + '\n' + rows.map((r) => r + '\n').join('')
}

/** An (anchor, positive) pair with its mined negatives, most similar first. */
export interface MinedTuple {
  anchor: string
  positive: string
  negatives: string[]
}

/**
 * The n-tuples of mined triplets (mineHardNegatives' order: by anchor, then positive, then negative): each
 * (anchor, positive) with its first k negatives. A pair with fewer than k is dropped (a row needs every column,
 * as sentence-transformers drops it) and counted.
 */
export function tuplesOf(triplets: readonly MinedTriplet[], k: number): { tuples: MinedTuple[]; dropped: number } {
  const tuples: MinedTuple[] = []
  let dropped = 0
  let current: MinedTuple | null = null
  const close = () => {
    if (!current) return
    if (current.negatives.length >= k) tuples.push({ ...current, negatives: current.negatives.slice(0, k) })
    else dropped++
  }
  for (const t of triplets) {
    if (!current || current.anchor !== t.anchor || current.positive !== t.positive) {
      close()
      current = { anchor: t.anchor, positive: t.positive, negatives: [] }
    }
    current.negatives.push(t.negative)
  }
  close()
  return { tuples, dropped }
}

/** The n-tuples' file text: a header anchor,positive,negative_1,...,negative_k (CSV, TSV), or one JSON object per tuple. */
export function formatTuples(tuples: readonly MinedTuple[], k: number, format: TripletFormat): string {
  const names = ['anchor', 'positive', ...Array.from({ length: k }, (_, i) => `negative_${i + 1}`)]
  const fields = (t: MinedTuple) => [t.anchor, t.positive, ...t.negatives]
  if (format === 'jsonl')
    return tuples.map((t) => JSON.stringify(Object.fromEntries(fields(t).map((v, i) => [names[i], v])))).join('\n') + '\n'
  const d = format === 'csv' ? ',' : '\t'
  return (
    names.join(d) +
    '\n' +
    tuples
      .map(
        (t) =>
          fields(t)
            .map((v) => field(v, d))
            .join(d) + '\n',
      )
      .join('')
  )
}
