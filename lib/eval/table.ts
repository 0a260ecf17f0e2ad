// A labelled evaluation set as a table of named columns, from the files MTEB's datasets (and a user's own) come in:
// JSON Lines (also gzipped, as many of MTEB's Hub datasets store them: test.jsonl.gz), CSV and TSV with a header,
// or Parquet (a file, or a split's shards). A folder holds one file per split: <split>.jsonl[.gz], .csv, .tsv,
// .parquet, or <split>-00000-of-0000N.parquet shards, at its top or under data/ (the Hub's layouts). Cells keep their
// JSON or Parquet types (strings, numbers, lists); CSV and TSV cells are strings.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { gunzipSync } from 'node:zlib'
import { extname, join } from 'node:path'
import { parseDelimited } from '../data/csv.js'
import { firstInvalidUtf8 } from '../data/text-lines.js'
import { isParquetShards, PARQUET_MAGIC, parquetColumns } from '../data/parquet.js'
import { jsonObjectOf } from '../data/json-object.js'

export interface Table {
  /** The file (or shards) it was read from. */
  path: string
  names: string[]
  rows: number
  /** Column `name`'s cells, by row. */
  column(name: string): unknown[]
  /** Where row i came from, for errors: "line 7" (of a text file) or "row 7" (Parquet). */
  where(i: number): string
}

/** Reads a table: Parquet by extension, magic bytes or a folder of shards; JSON Lines by extension or a first `{`; else CSV or TSV. */
export async function readTable(path: string): Promise<Table> {
  if (await isParquetShards(path)) return parquetTable(path)
  let buf: Buffer
  try {
    buf = await readFile(path)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw new Error(code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot read: ${(e as Error).message}`)
  }
  if (path.toLowerCase().endsWith('.gz')) {
    try {
      buf = gunzipSync(buf)
    } catch (e) {
      throw new Error(`${path}: not a readable gzip file (${(e as Error).message})`)
    }
  }
  if (buf.subarray(0, 4).toString('latin1') === PARQUET_MAGIC) return parquetTable(path)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf).replace(/^\ufeff/, '')
  } catch {
    throw new Error(`${path}: invalid UTF-8 (byte offset ${firstInvalidUtf8(buf)})`)
  }
  const ext = extname(path.replace(/\.gz$/i, '')).toLowerCase()
  const first = text.trimStart()
  if (ext === '.jsonl' || ext === '.json' || (ext !== '.csv' && ext !== '.tsv' && first.startsWith('{'))) return jsonlTable(path, text)
  const tab = ext === '.tsv' || (ext !== '.csv' && (text.split('\n', 1)[0] ?? '').includes('\t'))
  return delimitedTable(path, text, tab ? '\t' : ',')
}

function jsonlTable(path: string, text: string): Table {
  const rows: Record<string, unknown>[] = []
  const lines: number[] = []
  text.split('\n').forEach((raw, k) => {
    const line = raw.replace(/\r$/, '')
    if (line.trim() === '') return
    rows.push(jsonObjectOf(line, `${path}: line ${k + 1}`))
    lines.push(k + 1)
  })
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))]
  return {
    path,
    names,
    rows: rows.length,
    column: (name) => rows.map((r) => r[name]),
    where: (i) => `line ${lines[i]}`,
  }
}

function delimitedTable(path: string, text: string, delimiter: ',' | '\t'): Table {
  const records = parseDelimited(text, delimiter, path)
  if (records.length === 0) throw new Error(`${path}: empty (a header naming the columns is expected)`)
  const names = records[0].fields.map((s) => s.trim())
  const body = records.slice(1)
  body.forEach((r) => {
    if (r.fields.length !== names.length)
      throw new Error(`${path}: line ${r.line} has ${r.fields.length} fields, the header names ${names.length} (${names.join(', ')})`)
  })
  return {
    path,
    names,
    rows: body.length,
    column: (name) => {
      const c = names.indexOf(name)
      return body.map((r) => (c < 0 ? undefined : r.fields[c]))
    },
    where: (i) => `line ${body[i].line}`,
  }
}

async function parquetTable(path: string): Promise<Table> {
  const table = await parquetColumns(path)
  const all = await table.read(table.names)
  return {
    path,
    names: table.names,
    rows: table.rows,
    column: (name) => {
      const c = table.names.indexOf(name)
      return c < 0 ? Array.from({ length: table.rows }) : all[c]
    },
    where: (i) => `row ${i + 1}`,
  }
}

/** The first of `candidates` that `table` has, or an Error naming what was looked for and what there is. */
export function columnName(table: Table, candidates: string[], what: string): string {
  const name = candidates.find((c) => table.names.includes(c))
  if (name === undefined)
    throw new Error(
      `${table.path}: no ${what} column (looked for ${candidates.join(', ')}; the columns are ${table.names.join(', ') || 'none'})`,
    )
  return name
}

/** A cell that must be a non-empty string. */
export function textCell(table: Table, v: unknown, i: number, column: string): string {
  if (typeof v !== 'string' || v.trim() === '')
    throw new Error(`${table.path}: ${table.where(i)}: ${column} must be a non-empty string, got ${JSON.stringify(v) ?? 'nothing'}`)
  return v
}

/** A label cell as a class name: a string, an integer (Parquet's int64 as a bigint too) or a boolean. */
export function labelCell(table: Table, v: unknown, i: number, column: string): string {
  if (typeof v === 'bigint' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return String(v)
  if (typeof v === 'string' && v.trim() !== '') return v.trim()
  throw new Error(
    `${table.path}: ${table.where(i)}: ${column} must be a class (a string or a number), got ${JSON.stringify(v) ?? 'nothing'}`,
  )
}

/** The files a split may be stored as in a folder, in the order looked for. */
function splitCandidates(dir: string, split: string): string[] {
  const out: string[] = []
  for (const base of [dir, join(dir, 'data')]) {
    for (const ext of ['.jsonl', '.jsonl.gz', '.json', '.csv', '.tsv', '.parquet']) out.push(join(base, split + ext))
    let names: string[] = []
    try {
      if (statSync(base).isDirectory()) names = readdirSync(base)
    } catch {
      // no such folder: nothing here
    }
    if (names.some((n) => new RegExp(`^${split.replace(/[.+?^${}()|[\]\\]/g, '\\$&')}-\\d+-of-\\d+\\.parquet$`).test(n)))
      out.push(join(base, `${split}-*.parquet`))
  }
  return out
}

/** The file (or shard pattern) holding `split` in the folder `dir`, or null when there is none. */
export function splitFile(dir: string, split: string): string | null {
  return splitCandidates(dir, split).find((f) => f.includes('*') || existsSync(f)) ?? null
}

/** The file to read for `split`: `path` itself, or where it is a folder, its split (an Error naming what was looked for). */
export function fileOfSplit(path: string, split: string): string {
  const file = isFolder(path) ? splitFile(path, split) : path
  if (file === null) throw new Error(`${path}: no ${split} split (${split}.jsonl, ${split}.jsonl.gz, data/${split}-*.parquet, ...)`)
  return file
}

/** Whether `path` is a folder (of splits, or of one split's Parquet shards). */
export function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/**
 * A multilingual dataset's subsets (MTEB keeps a folder per language, e.g. `en/test.jsonl` or `data/en/...`): where
 * `path` is a folder that holds no `split` of its own, its subfolders (and those of its data/ folder) that do, in name
 * order; null where `path` is a file, holds the split itself, or has no such subfolder.
 */
export function subsetsOf(path: string, split: string): { name: string; path: string }[] | null {
  if (!isFolder(path) || splitFile(path, split) !== null) return null
  const found: { name: string; path: string }[] = []
  for (const base of [path, join(path, 'data')]) {
    let names: string[] = []
    try {
      names = readdirSync(base, { withFileTypes: true })
        .filter((d) => d.isDirectory() && !(base === path && d.name === 'data'))
        .map((d) => d.name)
        .sort()
    } catch {
      // no data/ folder
    }
    for (const name of names) if (splitFile(join(base, name), split) !== null) found.push({ name, path: join(base, name) })
  }
  return found.length ? found : null
}
