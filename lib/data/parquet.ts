// Parquet files, the format Hugging Face datasets are stored and served in (what `datasets` writes, what the Hub's
// dataset files are), read whole through hyparquet (pure JavaScript) with the codecs of hyparquet-compressors
// (snappy, gzip, zstd, brotli, lz4). Supervised training sets are small (SimCSE's NLI triplets: 275k rows), so a
// file is read into memory at once; only the columns asked for are decoded.
import { createHash } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { permutation, type DataFingerprint } from './sentences.js'

/** A Parquet file's top-level column names, and a reader of chosen columns' values (one array per column, by row). */
export interface ParquetColumns {
  names: string[]
  rows: number
  read(names: string[]): Promise<unknown[][]>
}

/** What a cell holds, for the error that says it is not text: no value, a number, a list, ... */
export function valueKind(v: unknown): string {
  if (v === null || v === undefined) return 'no value'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'bigint' || typeof v === 'number') return 'a number'
  if (v instanceof Uint8Array) return 'bytes'
  return typeof v === 'object' ? 'a record' : `a ${typeof v}`
}

/** The first bytes (and the last) of every Parquet file. */
export const PARQUET_MAGIC = 'PAR1'

/** Opens `buf` (the file at `path`, named in errors) as Parquet: its columns, without decoding any yet. */
export async function parquetColumns(path: string, buf?: Buffer): Promise<ParquetColumns> {
  const bytes = buf ?? (await readFile(path))
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
  // Loaded when a Parquet file is met: a run on text or CSV needs neither package.
  const [{ parquetMetadata, parquetReadObjects, parquetSchema }, { compressors }] = await Promise.all([
    import('hyparquet'),
    import('hyparquet-compressors'),
  ])
  let metadata
  try {
    metadata = parquetMetadata(file)
  } catch (e) {
    throw new Error(`${path}: not a readable Parquet file (${(e as Error).message})`)
  }
  const names = parquetSchema(metadata).children.map((c) => c.element.name)
  return {
    names,
    rows: Number(metadata.num_rows),
    async read(wanted: string[]) {
      let rows: Record<string, unknown>[]
      try {
        rows = await parquetReadObjects({ file, metadata, columns: wanted, compressors })
      } catch (e) {
        throw new Error(`${path}: cannot read Parquet columns ${wanted.join(', ')} (${(e as Error).message})`)
      }
      return wanted.map((name) => rows.map((r) => r[name]))
    },
  }
}

/** Sentences of one Parquet column, read as a text file's lines are (encode --file, search --corpus, train --data). */
export interface TextColumn {
  readonly path: string
  readonly count: number
  readonly column: string
  /** The file's size and SHA-256 and the sentences kept: what a resumed run checks. */
  readonly fingerprint: DataFingerprint
  /** The same seeded permutation a text file's epochs follow. */
  epochOrder(epoch: number, seed: number): Uint32Array
  readLines(indices: ArrayLike<number>): Promise<string[]>
  close(): Promise<void>
}

/** The names a text column goes by when a file has several and none is given. */
const TEXT_COLUMNS = ['text', 'sentence', 'document', 'passage', 'content']

/** The column of sentences among `names`: `column` when given, else the only one, else one named as TEXT_COLUMNS. */
export function textColumnOf(names: string[], column: string | undefined): string | undefined {
  if (column !== undefined) return names.includes(column) ? column : undefined
  return names.length === 1 ? names[0] : TEXT_COLUMNS.find((n) => names.includes(n))
}

/** The error for a file without the column asked for, or with several and none chosen. */
export function noTextColumn(path: string, names: string[], column: string | undefined): Error {
  return new Error(
    `${path}: ${column === undefined ? 'which column holds the sentences? Pass --column NAME' : `no column ${column}`} ` +
      `(its columns: ${names.join(', ')})`,
  )
}

/**
 * Column `column` of a Parquet file (default: its only column, else one named text, sentence, document, passage
 * or content), each row a sentence. A row without text, or empty when `blank` is 'error', is an error naming the
 * row; 'skip' leaves empty rows out (rows then count the kept ones). The column is held in memory (a million
 * sentences of wiki1m: about 120 MB of strings).
 */
export async function parquetTextColumn(path: string, column: string | undefined, blank: 'error' | 'skip'): Promise<TextColumn> {
  const buf = await readFile(path)
  const table = await parquetColumns(path, buf)
  const name = textColumnOf(table.names, column)
  if (name === undefined) throw noTextColumn(path, table.names, column)
  const [values] = await table.read([name])
  const texts: string[] = []
  values.forEach((v, r) => {
    if (typeof v !== 'string') throw new Error(`${path}: row ${r + 1}: column ${name} holds ${valueKind(v)}, not text`)
    if (v.trim() !== '') texts.push(v)
    else if (blank === 'error') throw new Error(`${path}: row ${r + 1}: column ${name} is empty (one vector per row: remove it)`)
  })
  if (texts.length === 0) throw new Error(`${path}: column ${name} holds no sentence`)
  const fingerprint = { bytes: buf.length, lines: texts.length, sha256: createHash('sha256').update(buf).digest('hex') }
  return {
    path,
    count: texts.length,
    column: name,
    fingerprint,
    epochOrder: (epoch, seed) => permutation(texts.length, seed, epoch),
    readLines: async (indices) =>
      Array.from(indices, (i) => {
        if (!Number.isInteger(i) || i < 0 || i >= texts.length)
          throw new RangeError(`${path}: row index ${i} out of range [0, ${texts.length})`)
        return texts[i]
      }),
    close: async () => {},
  }
}

/** Whether a file is Parquet: its extension, else its first bytes. */
export async function isParquetFile(path: string): Promise<boolean> {
  if (/\.parquet$/i.test(path)) return true
  try {
    const fd = await open(path, 'r')
    try {
      const { buffer, bytesRead } = await fd.read(Buffer.alloc(4), 0, 4, 0)
      return buffer.subarray(0, bytesRead).toString('latin1') === PARQUET_MAGIC
    } finally {
      await fd.close()
    }
  } catch {
    return false // the text reader names a missing file
  }
}
