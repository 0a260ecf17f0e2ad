// What `simcsepp encode` writes per sentence (json, jsonl, tsv lines) and its progress bar on a terminal.
import { float32Json, float32String } from '../util/float32-json.js'
import { ProgressBar, type ProgressStream } from './progress.js'

export const ENCODE_FORMATS = ['json', 'jsonl', 'tsv', 'f32', 'bytes'] as const
export type EncodeFormat = (typeof ENCODE_FORMATS)[number]

/** Files of at least this many lines get a progress bar (shorter ones finish before it would be read). */
export const PROGRESS_MIN_LINES = 1000

/**
 * TSV escaping of a sentence (the "linear TSV" convention, as PostgreSQL's COPY text format): a tab,
 * newline or carriage return inside it would split the row, so they become \t \n \r, and \ becomes \\.
 */
export function tsvField(s: string): string {
  return s.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'))
}

/**
 * One text line (no newline) for a sentence and its vector, in a text format: float32 values as their shortest
 * decimals, a quantized vector's (encode --quantize) as integers.
 */
export function encodeLine(format: 'json' | 'jsonl' | 'tsv', sentence: string, v: Float32Array | Int8Array | Uint8Array): string {
  const json = () => (v instanceof Float32Array ? float32Json(v) : `[${v.join(',')}]`)
  if (format === 'json') return json()
  if (format === 'jsonl') return `{"sentence":${JSON.stringify(sentence)},"embedding":${json()}}`
  const parts = new Array<string>(v.length + 1)
  parts[0] = tsvField(sentence)
  for (let i = 0; i < v.length; i++) parts[i + 1] = v instanceof Float32Array ? float32String(Math.fround(v[i])) : String(v[i])
  return parts.join('\t')
}

/** A progress bar for encoding `total` lines (or other texts: `unit`) when `stream` is a terminal and they are many, else null. */
export function encodeProgressBar(total: number, stream: ProgressStream = process.stderr, unit = 'sentences'): ProgressBar | null {
  if (!stream.isTTY || total < PROGRESS_MIN_LINES) return null
  return new ProgressBar({ total, stream, unit })
}
