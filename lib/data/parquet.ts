// Parquet files, the format Hugging Face datasets are stored and served in (what `datasets` writes, what the Hub's
// dataset files are), read whole through hyparquet (pure JavaScript) with the codecs of hyparquet-compressors
// (snappy, gzip, zstd, brotli, lz4). Supervised training sets are small (SimCSE's NLI triplets: 275k rows), so a
// file is read into memory at once; only the columns asked for are decoded. A dataset of several files (the Hub's
// shards, train-00000-of-00004.parquet ...) is read as one table: a folder of them, or a file name pattern.
import { createHash } from 'node:crypto'
import { open, readdir, readFile, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { permutation, type DataFingerprint } from './sentences.js'

/** A Parquet file's (or shards') top-level column names, and a reader of chosen columns' values (one array per column, by row). */
export interface ParquetColumns {
  names: string[]
  rows: number
  read(names: string[]): Promise<unknown[][]>
  /** The bytes read, and their SHA-256 (the shards' in order): what a resumed run checks. */
  bytes: number
  sha256: string
}

/** Whether `path` names several Parquet files: a folder, or a file name with `*` (train-*.parquet). */
export async function isParquetShards(path: string): Promise<boolean> {
  return basename(path).includes('*') || ((await stat(path).catch(() => null))?.isDirectory() ?? false)
}

/**
 * The files of a sharded Parquet dataset in name order: the .parquet files of a folder, or those whose names match a
 * pattern with `*`. A folder holding several splits (train-..., test-...) is refused: training on all of them would
 * train on the test set; the error names the pattern of each.
 */
export async function parquetShards(path: string): Promise<string[]> {
  const pattern = basename(path).includes('*')
  const dir = pattern ? dirname(path) : path
  let entries: string[]
  try {
    entries = (await readdir(dir)).sort()
  } catch {
    throw new Error(`${path}: no such folder${pattern ? ` (${dir})` : ''}`)
  }
  const re = pattern
    ? new RegExp(
        `^${basename(path)
          .split('*')
          .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*')}$`,
      )
    : /\.parquet$/i
  const files = entries.filter((name) => re.test(name))
  if (files.length === 0) throw new Error(pattern ? `${path}: no file matches` : `${path}: a folder without .parquet files`)
  if (!pattern) {
    const splits = [...new Set(files.map((name) => /^(.+?)-\d+-of-\d+\.parquet$/i.exec(name)?.[1]).filter((x) => x !== undefined))]
    if (splits.length > 1)
      throw new Error(
        `${path}: holds the splits ${splits.join(', ')}: train on one, e.g. '${join(path, `${splits.includes('train') ? 'train' : splits[0]}-*.parquet`)}'`,
      )
  }
  return files.map((name) => join(dir, name))
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

/**
 * Opens the Parquet file at `path` (or the shards it names: parquetShards) as one table: its columns, without decoding
 * any yet. The shards must have the same columns.
 */
export async function parquetColumns(path: string): Promise<ParquetColumns> {
  if (!(await isParquetShards(path))) return parquetFile(path, await readFile(path))
  const files = await parquetShards(path)
  const shards = await Promise.all(files.map(async (file) => parquetFile(file, await readFile(file))))
  const names = shards[0].names
  shards.forEach((shard, i) => {
    if (shard.names.join() !== names.join())
      throw new Error(`${files[i]}: its columns (${shard.names.join(', ')}) are not those of ${basename(files[0])} (${names.join(', ')})`)
  })
  const hash = createHash('sha256')
  for (const shard of shards) hash.update(shard.sha256)
  return {
    names,
    rows: shards.reduce((n, shard) => n + shard.rows, 0),
    bytes: shards.reduce((n, shard) => n + shard.bytes, 0),
    // The shards' digests, hashed in order: a renamed, reordered or edited shard changes it.
    sha256: hash.digest('hex'),
    async read(wanted: string[]) {
      const parts: unknown[][][] = []
      for (const shard of shards) parts.push(await shard.read(wanted))
      return wanted.map((_, c) => parts.flatMap((part) => part[c]))
    },
  }
}

/** One Parquet file's table, from its bytes (`path` names it in errors). */
async function parquetFile(path: string, bytes: Buffer): Promise<ParquetColumns> {
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
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
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
  const table = await parquetColumns(path)
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
  const fingerprint = { bytes: table.bytes, lines: texts.length, sha256: table.sha256 }
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

/** Whether a file is Parquet (its extension, else its first bytes), or `path` names Parquet shards. */
export async function isParquetFile(path: string): Promise<boolean> {
  if (/\.parquet$/i.test(path) || (await isParquetShards(path))) return true
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
