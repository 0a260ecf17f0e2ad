// The run's tokenizer, kept in every checkpoint: its file (vocab.txt or tokenizer.json) and the
// tokenizer_config.json beside it, byte for byte, with a SHA-256 over them in state.json. A resumed
// run loads this copy, so it tokenizes as the run it continues without being told --tokenizer again
// and without reading anything outside the checkpoint; a different --tokenizer is caught by the hash.
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { writeFileSynced } from '../util/atomic-write.js'

/** What state.json records about the copy. */
export interface TokenizerRecord {
  /** Where the run's tokenizer came from (for messages). */
  source: string
  /** The copied files, in the checkpoint directory. */
  files: string[]
  /** SHA-256 over the files' names and contents. */
  sha256: string
}

export interface TokenizerCopy extends TokenizerRecord {
  data: Map<string, Uint8Array>
}

/** The names a copy may use (what Tokenizer.load reads from a directory). */
export const TOKENIZER_FILES = ['tokenizer.json', 'vocab.txt', 'tokenizer_config.json']

function fingerprint(data: Map<string, Uint8Array>): string {
  const h = createHash('sha256')
  for (const [name, bytes] of [...data].sort(([a], [b]) => (a < b ? -1 : 1))) h.update(`${name}\0${bytes.length}\0`).update(bytes)
  return h.digest('hex')
}

function copyOf(source: string, data: Map<string, Uint8Array>): TokenizerCopy {
  return { source, files: [...data.keys()], sha256: fingerprint(data), data }
}

/**
 * The copy of a tokenizer loaded from `sourceFile` (Tokenizer.sourceFile): that file under the name
 * Tokenizer.load looks for, and the tokenizer_config.json it read beside it.
 */
export async function copyTokenizer(sourceFile: string, source: string): Promise<TokenizerCopy> {
  const data = new Map<string, Uint8Array>()
  data.set(sourceFile.endsWith('.json') ? 'tokenizer.json' : 'vocab.txt', await readFile(sourceFile))
  const config = join(dirname(sourceFile), 'tokenizer_config.json')
  if (existsSync(config)) data.set('tokenizer_config.json', await readFile(config))
  return copyOf(source, data)
}

/** Writes (and fsyncs) the copy's files into `dir`, a checkpoint being assembled. */
export async function writeTokenizerCopy(dir: string, copy: TokenizerCopy): Promise<void> {
  for (const [name, bytes] of copy.data) await writeFileSynced(join(dir, name), bytes)
}

/** Reads the copy recorded in a checkpoint's state.json; throws when a file is missing or differs from the record. */
export async function readTokenizerCopy(dir: string, record: TokenizerRecord): Promise<TokenizerCopy> {
  const data = new Map<string, Uint8Array>()
  for (const name of record.files) {
    try {
      data.set(name, await readFile(join(dir, name)))
    } catch {
      throw new Error(`${join(dir, name)}: missing (the checkpoint's copy of the run's tokenizer)`)
    }
  }
  const copy = copyOf(record.source, data)
  if (copy.sha256 !== record.sha256) throw new Error(`${dir}: the tokenizer files differ from the SHA-256 in state.json`)
  return copy
}

/** The record state.json keeps. */
export function tokenizerRecord(copy: TokenizerCopy): TokenizerRecord {
  return { source: copy.source, files: copy.files, sha256: copy.sha256 }
}
