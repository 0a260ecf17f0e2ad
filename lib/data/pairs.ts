// Supervised training data: pairs (anchor, positive), triplets (anchor, positive, hard negative) or n-tuples
// (anchor, positive, k hard negatives: sentence-transformers' mine_hard_negatives "n-tuple" output), as
// SimCSE's CSV files (header sent0,sent1[,hard_neg]), the same as TSV, or JSONL objects with
// anchor/positive/negative (sentence-transformers; query for the anchor, negative_1 .. negative_k for
// several negatives) or sent0/sent1/hard_neg keys, or Parquet (Hugging Face datasets' files) with columns of
// those names. Scored pairs (sentence1, sentence2, score: sentence-transformers/stsb) carry a gold score per pair,
// read when asked (CoSENT trains on them). Supervised sets are small next to unsupervised corpora (SimCSE's NLI triplets: 275k rows,
// 40 MB), so the file is read and checked whole, and its examples are kept in memory.
import { createHash } from 'node:crypto'
import { open, readFile, stat } from 'node:fs/promises'
import { extname } from 'node:path'
import { firstInvalidUtf8 } from './text-lines.js'
import { parseDelimited } from './csv.js'
import { permutation, type DataFingerprint } from './sentences.js'
import { isParquetShards, PARQUET_MAGIC, parquetColumns, valueKind, type ParquetColumns } from './parquet.js'
import { jsonObjectOf } from './json-object.js'

export type DataFormat = 'text' | 'csv' | 'tsv' | 'jsonl' | 'parquet'
export const DATA_FORMATS: DataFormat[] = ['text', 'csv', 'tsv', 'jsonl', 'parquet']

/**
 * The accepted names of each column: SimCSE's, then sentence-transformers' (stsb's sentence1, sentence2, score; the
 * parallel-sentences datasets' english, non_english).
 */
const ANCHOR = ['sent0', 'anchor', 'query', 'sentence1', 'english']
const POSITIVE = ['sent1', 'positive', 'sentence2', 'non_english']
/** A pair's gold score (scored pairs: STS data, or 0/1 labels). */
const SCORE = ['score', 'label']
const NEGATIVE = ['hard_neg', 'negative']
/** Several hard negatives per example: negative_1 .. negative_k (or hard_neg_1 ..), numbered from 1. */
const NUMBERED = /^(?:hard_neg|negative)_([1-9][0-9]*)$/
const NAMES = 'sent0,sent1[,hard_neg] or anchor,positive[,negative] or anchor,positive,negative_1,...,negative_k'

/**
 * The format of a training file: `requested` unless 'auto'; else by extension (.csv, .tsv, .jsonl,
 * .json, .parquet), else by content (Parquet's magic bytes, a first line of column names, or a JSON
 * object), else plain text. So a supervised file is never read as sentences, header and punctuation included.
 */
export async function detectFormat(path: string, requested: DataFormat | 'auto' = 'auto'): Promise<DataFormat> {
  if (requested !== 'auto') return requested
  if (await isParquetShards(path)) return 'parquet' // a folder of shards, or a pattern naming them
  const ext = extname(path).toLowerCase()
  if (ext === '.csv' || ext === '.tsv' || ext === '.jsonl' || ext === '.parquet') return ext.slice(1) as DataFormat
  if (ext === '.json') return 'jsonl'
  let head: string
  try {
    // The first 4 KiB only: a text corpus may be gigabytes.
    const fd = await open(path, 'r')
    try {
      const { buffer, bytesRead } = await fd.read(Buffer.alloc(4096), 0, 4096, 0)
      if (buffer.subarray(0, 4).toString('latin1') === PARQUET_MAGIC) return 'parquet'
      head = buffer.subarray(0, bytesRead).toString('utf8')
    } finally {
      await fd.close()
    }
  } catch {
    return 'text' // the text reader names a missing or unreadable file
  }
  const first = head
    .replace(/^\ufeff/, '')
    .split(/\r?\n/, 1)[0]
    .trim()
  if (first.startsWith('{') && first.endsWith('}')) return 'jsonl'
  for (const [format, sep] of [
    ['csv', ','],
    ['tsv', '\t'],
  ] as const) {
    const names = first.split(sep).map((s) => s.trim().replace(/^"(.*)"$/, '$1'))
    if (names.length >= 2 && columnsOf(names) !== null) return format
  }
  return 'text'
}

/**
 * Which field holds each column (anchor, positive, then the negatives: one, or negative_1 .. negative_k in
 * order), or null when the names are not a header.
 */
export function columnsOf(names: string[]): number[] | null {
  const anchor = names.findIndex((n) => ANCHOR.includes(n))
  const positive = names.findIndex((n) => POSITIVE.includes(n))
  if (anchor < 0 || positive < 0) return null
  const single = names.findIndex((n) => NEGATIVE.includes(n))
  const numbered = names.flatMap((n, i) => (NUMBERED.test(n) ? [{ k: Number(NUMBERED.exec(n)![1]), i }] : []))
  numbered.sort((a, b) => a.k - b.k)
  return [anchor, positive, ...(single >= 0 ? [single] : []), ...numbered.map((x) => x.i)]
}

/** What is wrong with a header's negative columns (one kind, numbered 1 .. k without a gap or twice), or null. */
function negativesProblem(names: string[]): string | null {
  const single = names.filter((n) => NEGATIVE.includes(n))
  const numbered = names.filter((n) => NUMBERED.test(n)).map((n) => Number(NUMBERED.exec(n)![1]))
  if (single.length + (numbered.length > 0 ? 1 : 0) > 1)
    return `the negatives are named two ways (${[...single, ...(numbered.length ? ['negative_1 ...'] : [])].join(', ')}): keep one`
  const sorted = [...numbered].sort((a, b) => a - b)
  const gap = sorted.findIndex((k, i) => k !== i + 1)
  if (gap >= 0) return `the numbered negatives must run 1, 2, ..., k without a gap or a repeat (found ${sorted.join(', ')})`
  return null
}

/** What PairFile.open reads besides the sentences. */
export interface PairFileOptions {
  /** Each pair's gold score, from its score (or label) column: pairs only, a finite number each. Default false. */
  scores?: boolean
}

/**
 * A supervised training file: `columns[c][i]` is column c (anchor, positive, negative) of example i, and `scores[i]`
 * its gold score when they were read.
 */
export class PairFile {
  private constructor(
    readonly path: string,
    readonly format: DataFormat,
    private readonly columns: string[][],
    readonly fingerprint: DataFingerprint,
    /** The pairs' gold scores (PairFileOptions.scores), else null. */
    readonly scores: Float32Array | null,
    /** The name of the file's score column, read or not (a run that does not use it says so). */
    readonly scoreColumn: string | null,
  ) {}

  /** Number of examples (pairs or triplets). */
  get count(): number {
    return this.columns[0].length
  }

  /** Columns per example: 2 (pairs), 3 (triplets: a hard negative), 2 + k (n-tuples: k hard negatives). */
  get width(): number {
    return this.columns.length
  }

  /** What the log says about the data. */
  describe(): string {
    const what = this.scores ? `scored pairs (anchor, positive, ${this.scoreColumn})` : exampleKind(this.width)
    return `${this.path}: ${this.count} ${what}, read as ${this.format}`
  }

  /**
   * Reads and checks the whole file: strict UTF-8, a header naming the columns (CSV/TSV) or the same
   * keys on every line (JSONL), no empty sentence. Errors name the file and the line.
   */
  static async open(path: string, format: Exclude<DataFormat, 'text'>, options: PairFileOptions = {}): Promise<PairFile> {
    const scored = options.scores === true
    let buf: Buffer | null = null
    try {
      if (format !== 'parquet' || !(await isParquetShards(path))) {
        if ((await stat(path)).isDirectory()) throw new Error(`${path}: is a directory, expected a ${format} file`)
        buf = await readFile(path)
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      throw code === 'ENOENT' ? new Error(`${path}: no such file`) : e
    }
    let rows: Rows
    let digest: { bytes: number; sha256: string }
    if (format === 'parquet') {
      const table = await parquetColumns(path)
      rows = await parquetRows(table, path, scored)
      digest = table
    } else {
      if (!buf) throw new Error(`${path}: expected a ${format} file`)
      digest = { bytes: buf.length, sha256: createHash('sha256').update(buf).digest('hex') }
      let text: string
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(buf)
      } catch {
        throw new Error(`${path}: invalid UTF-8 (byte offset ${firstInvalidUtf8(buf)})`)
      }
      text = text.replace(/^\ufeff/, '')
      rows = format === 'jsonl' ? jsonlRows(text, path, scored) : delimitedRows(text, format === 'csv' ? ',' : '\t', path, scored)
    }
    if (rows.examples.length === 0) throw new Error(`${path}: no examples${format === 'parquet' ? '' : ' after the header'}`)
    const width = rows.examples[0].fields.length
    if (scored && width !== 2)
      throw new Error(`${path}: scored data must be pairs (sentence1, sentence2, score); this file has ${exampleKind(width)}`)
    const columns = Array.from({ length: width }, (_, c) => rows.examples.map((r) => r.fields[c]))
    const bad = rows.examples.find((r) => r.fields.some((s) => s.trim() === ''))
    if (bad)
      throw new Error(`${path}: ${format === 'parquet' ? 'row' : 'line'} ${bad.line}: an empty sentence (every example needs ${rows.what})`)
    const fingerprint = { bytes: digest.bytes, lines: rows.examples.length, sha256: digest.sha256 }
    const scores = scored ? Float32Array.from(rows.examples, (r) => r.score!) : null
    return new PairFile(path, format, columns, fingerprint, scores, rows.scoreColumn)
  }

  epochOrder(epoch: number, seed: number): Uint32Array {
    return permutation(this.count, seed, epoch)
  }

  /** The examples' columns (anchors, positives[, negatives]) at these indices, each in the order asked. */
  async readColumns(indices: ArrayLike<number>): Promise<string[][]> {
    return this.columns.map((col) => Array.from(indices, (i) => col[i]))
  }

  /** The gold scores of the examples at these indices (scored pairs), in the order asked; undefined without scores. */
  scoresOf(indices: ArrayLike<number>): Float32Array | undefined {
    const scores = this.scores
    return scores ? Float32Array.from(indices, (i) => scores[i]) : undefined
  }

  /** Example i's sentences, every column. */
  textsOf(i: number): string[] {
    return this.columns.map((col) => col[i])
  }

  /** Each example's sentences as one text (what a vocabulary built from the data counts). */
  async readLines(indices: ArrayLike<number>): Promise<string[]> {
    return Array.from(indices, (i) => this.columns.map((col) => col[i]).join('\n'))
  }

  async close(): Promise<void> {}
}

/** What examples of this many columns are, for the log and the model card. */
export function exampleKind(columns: number): string {
  if (columns === 2) return 'pairs (anchor, positive)'
  if (columns === 3) return 'triplets (anchor, positive, hard negative)'
  return `${columns}-tuples (anchor, positive, ${columns - 2} hard negatives)`
}

interface Rows {
  /** Each example's fields, the line it starts on (Parquet: its row, from 1), and its score when asked. */
  examples: { fields: string[]; line: number; score?: number }[]
  /** The columns, for messages. */
  what: string
  /** The score column's name when the file has one, read or not. */
  scoreColumn: string | null
}

/** The score column among `names` (null without one), refused when scores are wanted and there is none. */
function scoreColumnOf(names: string[], wanted: boolean, where: string): string | null {
  const name = names.find((n) => SCORE.includes(n)) ?? null
  if (wanted && name === null)
    throw new Error(
      `${where}: scored pairs need a score column (${SCORE.join(' or ')}) beside the two sentences (found ${names.join(', ')})`,
    )
  return name
}

/** A score read from text (CSV/TSV) or a value (JSONL, Parquet): a finite number, else an error naming where. */
function scoreValue(v: unknown, where: string, column: string): number {
  const x = typeof v === 'string' && v.trim() !== '' ? Number(v) : typeof v === 'bigint' ? Number(v) : v
  if (typeof x !== 'number' || !Number.isFinite(x))
    throw new Error(
      `${where}: the ${column} ${typeof v === 'string' ? JSON.stringify(v) : `holds ${valueKind(v)}, which`} is not a finite number`,
    )
  return x
}

/** A Parquet file's examples: the columns named as a header would be (strings in every row). */
async function parquetRows(table: ParquetColumns, path: string, scored: boolean): Promise<Rows> {
  const at = columnsOf(table.names)
  if (!at) throw new Error(`${path}: the Parquet columns must be named ${NAMES} (found ${table.names.join(', ') || 'none'})`)
  const problem = negativesProblem(table.names)
  if (problem) throw new Error(`${path}: ${problem}`)
  const scoreColumn = scoreColumnOf(table.names, scored, path)
  const wanted = at.map((i) => table.names[i])
  const values = await table.read(scored ? [...wanted, scoreColumn!] : wanted)
  const examples = Array.from({ length: table.rows }, (_, r) => {
    const fields = wanted.map((name, c) => {
      const v = values[c][r]
      if (typeof v !== 'string') throw new Error(`${path}: row ${r + 1}: column ${name} holds ${valueKind(v)}, not text`)
      return v
    })
    if (!scored) return { fields, line: r + 1 }
    return { fields, line: r + 1, score: scoreValue(values[wanted.length][r], `${path}: row ${r + 1}`, scoreColumn!) }
  })
  return { examples, what: wanted.join(', '), scoreColumn }
}

function delimitedRows(text: string, delimiter: ',' | '\t', path: string, scored: boolean): Rows {
  const [header, ...records] = parseDelimited(text, delimiter, path)
  const names = header?.fields.map((s) => s.trim()) ?? []
  const at = columnsOf(names)
  if (!at) throw new Error(`${path}: the first line must name the columns ${NAMES} (found ${JSON.stringify(names.join(delimiter))})`)
  const problem = negativesProblem(names)
  if (problem) throw new Error(`${path}: line 1: ${problem}`)
  const what = at.map((i) => names[i]).join(', ')
  const scoreColumn = scoreColumnOf(names, scored, `${path}: line 1`)
  const si = scoreColumn === null ? -1 : names.indexOf(scoreColumn)
  const examples = records.map((r) => {
    if (r.fields.length !== names.length)
      throw new Error(
        `${path}: line ${r.line}: ${r.fields.length} fields, the header has ${names.length} (quote fields holding "${delimiter}")`,
      )
    const fields = at.map((i) => r.fields[i])
    return scored
      ? { fields, line: r.line, score: scoreValue(r.fields[si], `${path}: line ${r.line}`, scoreColumn!) }
      : { fields, line: r.line }
  })
  return { examples, what, scoreColumn }
}

function jsonlRows(text: string, path: string, scored: boolean): Rows {
  const examples: Rows['examples'] = []
  let keys: string[] | null = null
  let scoreColumn: string | null = null
  text.split('\n').forEach((raw, k) => {
    const line = raw.replace(/\r$/, '')
    if (line.trim() === '') return
    const o = jsonObjectOf(line, `${path}: line ${k + 1}`)
    const at = columnsOf(Object.keys(o))
    if (!at) throw new Error(`${path}: line ${k + 1}: expected the keys ${NAMES} (found ${Object.keys(o).join(', ') || 'none'})`)
    const problem = negativesProblem(Object.keys(o))
    if (problem) throw new Error(`${path}: line ${k + 1}: ${problem}`)
    const names = at.map((i) => Object.keys(o)[i])
    keys ??= names
    if (names.join() !== keys.join())
      throw new Error(`${path}: line ${k + 1}: keys ${names.join(', ')}, but the first example has ${keys.join(', ')}`)
    const fields = names.map((n) => o[n])
    if (!fields.every((f) => typeof f === 'string')) throw new Error(`${path}: line ${k + 1}: ${names.join(', ')} must be strings`)
    if (examples.length === 0) scoreColumn = scoreColumnOf(Object.keys(o), scored, `${path}: line ${k + 1}`)
    if (!scored) examples.push({ fields: fields as string[], line: k + 1 })
    else {
      if (!(scoreColumn! in o)) throw new Error(`${path}: line ${k + 1}: no ${scoreColumn} (the first example has one)`)
      examples.push({ fields: fields as string[], line: k + 1, score: scoreValue(o[scoreColumn!], `${path}: line ${k + 1}`, scoreColumn!) })
    }
  })
  return { examples, what: (keys as string[] | null)?.join(', ') ?? '', scoreColumn }
}
