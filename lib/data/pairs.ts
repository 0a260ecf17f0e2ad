// Supervised training data: pairs (anchor, positive) or triplets (anchor, positive, hard negative), as
// SimCSE's CSV files (header sent0,sent1[,hard_neg]), the same as TSV, or JSONL objects with
// anchor/positive/negative (sentence-transformers) or sent0/sent1/hard_neg keys. Supervised sets are
// small next to unsupervised corpora (SimCSE's NLI triplets: 275k rows, 40 MB), so the file is read and
// checked whole, and its examples are kept in memory.
import { createHash } from 'node:crypto'
import { open, readFile, stat } from 'node:fs/promises'
import { extname } from 'node:path'
import { firstInvalidUtf8 } from './text-lines.js'
import { parseDelimited } from './csv.js'
import { permutation, type DataFingerprint } from './sentences.js'

export type DataFormat = 'text' | 'csv' | 'tsv' | 'jsonl'
export const DATA_FORMATS: DataFormat[] = ['text', 'csv', 'tsv', 'jsonl']

/** The accepted names of each column: SimCSE's, then sentence-transformers'. */
const COLUMNS = [
  ['sent0', 'anchor'],
  ['sent1', 'positive'],
  ['hard_neg', 'negative'],
] as const
const NAMES = 'sent0,sent1[,hard_neg] or anchor,positive[,negative]'

/**
 * The format of a training file: `requested` unless 'auto'; else by extension (.csv, .tsv, .jsonl,
 * .json), else by content (a first line of column names, or a JSON object), else plain text. So a
 * supervised file is never read as sentences, header and punctuation included.
 */
export async function detectFormat(path: string, requested: DataFormat | 'auto' = 'auto'): Promise<DataFormat> {
  if (requested !== 'auto') return requested
  const ext = extname(path).toLowerCase()
  if (ext === '.csv' || ext === '.tsv' || ext === '.jsonl') return ext.slice(1) as DataFormat
  if (ext === '.json') return 'jsonl'
  let head: string
  try {
    // The first 4 KiB only: a text corpus may be gigabytes.
    const fd = await open(path, 'r')
    try {
      const { buffer, bytesRead } = await fd.read(Buffer.alloc(4096), 0, 4096, 0)
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

/** Which field holds each column (anchor, positive, negative?), or null when the names are not a header. */
function columnsOf(names: string[]): number[] | null {
  const at = COLUMNS.map((aliases) => names.findIndex((n) => (aliases as readonly string[]).includes(n)))
  if (at[0] < 0 || at[1] < 0) return null
  return at[2] < 0 ? at.slice(0, 2) : at
}

/** A supervised training file: `columns[c][i]` is column c (anchor, positive, negative) of example i. */
export class PairFile {
  private constructor(
    readonly path: string,
    readonly format: DataFormat,
    private readonly columns: string[][],
    readonly fingerprint: DataFingerprint,
  ) {}

  /** Number of examples (pairs or triplets). */
  get count(): number {
    return this.columns[0].length
  }

  /** 2 (pairs) or 3 (triplets: with hard negatives). */
  get width(): 2 | 3 {
    return this.columns.length as 2 | 3
  }

  /** What the log says about the data. */
  describe(): string {
    const kind = this.width === 3 ? 'triplets (anchor, positive, hard negative)' : 'pairs (anchor, positive)'
    return `${this.path}: ${this.count} ${kind}, read as ${this.format}`
  }

  /**
   * Reads and checks the whole file: strict UTF-8, a header naming the columns (CSV/TSV) or the same
   * keys on every line (JSONL), no empty sentence. Errors name the file and the line.
   */
  static async open(path: string, format: Exclude<DataFormat, 'text'>): Promise<PairFile> {
    let buf: Buffer
    try {
      if ((await stat(path)).isDirectory()) throw new Error(`${path}: is a directory, expected a ${format} file`)
      buf = await readFile(path)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      throw code === 'ENOENT' ? new Error(`${path}: no such file`) : e
    }
    let text: string
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(buf)
    } catch {
      throw new Error(`${path}: invalid UTF-8 (byte offset ${firstInvalidUtf8(buf)})`)
    }
    text = text.replace(/^\ufeff/, '')
    const rows = format === 'jsonl' ? jsonlRows(text, path) : delimitedRows(text, format === 'csv' ? ',' : '\t', path)
    if (rows.examples.length === 0) throw new Error(`${path}: no examples after the header`)
    const width = rows.examples[0].fields.length
    const columns = Array.from({ length: width }, (_, c) => rows.examples.map((r) => r.fields[c]))
    const bad = rows.examples.find((r) => r.fields.some((s) => s.trim() === ''))
    if (bad) throw new Error(`${path}: line ${bad.line}: an empty sentence (every example needs ${rows.what})`)
    const fingerprint = { bytes: buf.length, lines: rows.examples.length, sha256: createHash('sha256').update(buf).digest('hex') }
    return new PairFile(path, format, columns, fingerprint)
  }

  epochOrder(epoch: number, seed: number): Uint32Array {
    return permutation(this.count, seed, epoch)
  }

  /** The examples' columns (anchors, positives[, negatives]) at these indices, each in the order asked. */
  async readColumns(indices: ArrayLike<number>): Promise<string[][]> {
    return this.columns.map((col) => Array.from(indices, (i) => col[i]))
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

interface Rows {
  examples: { fields: string[]; line: number }[]
  /** The columns, for messages. */
  what: string
}

function delimitedRows(text: string, delimiter: ',' | '\t', path: string): Rows {
  const [header, ...records] = parseDelimited(text, delimiter, path)
  const names = header?.fields.map((s) => s.trim()) ?? []
  const at = columnsOf(names)
  if (!at) throw new Error(`${path}: the first line must name the columns ${NAMES} (found ${JSON.stringify(names.join(delimiter))})`)
  const what = at.map((i) => names[i]).join(', ')
  const examples = records.map((r) => {
    if (r.fields.length !== names.length)
      throw new Error(
        `${path}: line ${r.line}: ${r.fields.length} fields, the header has ${names.length} (quote fields holding "${delimiter}")`,
      )
    return { fields: at.map((i) => r.fields[i]), line: r.line }
  })
  return { examples, what }
}

function jsonlRows(text: string, path: string): Rows {
  const examples: Rows['examples'] = []
  let keys: string[] | null = null
  text.split('\n').forEach((raw, k) => {
    const line = raw.replace(/\r$/, '')
    if (line.trim() === '') return
    let v: unknown
    try {
      v = JSON.parse(line)
    } catch {
      throw new Error(`${path}: line ${k + 1} is not JSON (one object per line is expected)`)
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${path}: line ${k + 1} is not a JSON object`)
    const o = v as Record<string, unknown>
    const at = columnsOf(Object.keys(o))
    if (!at) throw new Error(`${path}: line ${k + 1}: expected the keys ${NAMES} (found ${Object.keys(o).join(', ') || 'none'})`)
    const names = at.map((i) => Object.keys(o)[i])
    keys ??= names
    if (names.join() !== keys.join())
      throw new Error(`${path}: line ${k + 1}: keys ${names.join(', ')}, but the first example has ${keys.join(', ')}`)
    const fields = names.map((n) => o[n])
    if (!fields.every((f) => typeof f === 'string')) throw new Error(`${path}: line ${k + 1}: ${names.join(', ')} must be strings`)
    examples.push({ fields: fields as string[], line: k + 1 })
  })
  return { examples, what: (keys as string[] | null)?.join(', ') ?? '' }
}
