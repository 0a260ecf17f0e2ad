// Parquet files, the format Hugging Face datasets are stored and served in (what `datasets` writes, what the Hub's
// dataset files are), read whole through hyparquet (pure JavaScript) with the codecs of hyparquet-compressors
// (snappy, gzip, zstd, brotli, lz4). Supervised training sets are small (SimCSE's NLI triplets: 275k rows), so a
// file is read into memory at once; only the columns asked for are decoded.
import { readFile } from 'node:fs/promises'

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
