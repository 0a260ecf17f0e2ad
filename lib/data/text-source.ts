// Sentences to encode, search or train on without supervision, from any file that holds them: one per line (text),
// a Parquet column (parquet.ts), or a field of JSON Lines objects ({"text": ...}: corpora exported with `datasets`'
// to_json). The column (field) is the one given, else the only one, else one named text, sentence, document,
// passage or content.
import { SentenceFile } from './sentences.js'
import { firstLineOf } from './text-lines.js'
import { isParquetFile, noTextColumn, parquetTextColumn, textColumnOf, type TextColumn } from './parquet.js'

/** The keys of a JSON Lines file's first object, or null when its first non-blank line is not a JSON object. */
export async function jsonlKeys(path: string): Promise<string[] | null> {
  const first = await firstLineOf(path)
  try {
    const v = JSON.parse(first?.line ?? '') as unknown
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.keys(v) : null
  } catch {
    return null
  }
}

/**
 * The sentences of `path` (blank lines, empty rows or fields skipped or refused as `blank` says): a Parquet column, a
 * JSON Lines field, or the lines of a text file. `column` applies to Parquet and JSON Lines only.
 */
export async function openSentences(path: string, column: string | undefined, blank: 'skip' | 'error'): Promise<SentenceFile | TextColumn> {
  if (await isParquetFile(path)) return parquetTextColumn(path, column, blank)
  const keys = await jsonlKeys(path)
  if (keys) {
    const field = textColumnOf(keys, column)
    if (field === undefined) throw noTextColumn(path, keys, column)
    return SentenceFile.open(path, { blankLines: blank, field })
  }
  if (column !== undefined) throw new Error(`${path}: --column names a column of a Parquet file or a field of JSON Lines; this is text`)
  return SentenceFile.open(path, { blankLines: blank })
}
