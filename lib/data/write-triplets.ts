// Triplets written in the formats supervised training reads back (pairs.ts): CSV or TSV with the header
// sent0,sent1,hard_neg (a field holding the delimiter, a quote, a line break or edge spaces is quoted, its quotes
// doubled: RFC 4180, as csv.ts parses it), or JSONL objects with anchor, positive and negative.
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
