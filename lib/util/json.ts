// The one JSON reader for files (config.json, checkpoint state, sentence-transformers and tokenizer
// configs): every error names the file, so a broken model directory is diagnosed from the message alone.
import { promises as fsp } from 'node:fs'

export interface ReadJsonOptions {
  /** Resolve to undefined when the file does not exist, instead of throwing. */
  optional?: boolean
  /** Added to the "not found" error, e.g. 'expected a Hugging Face model directory with a config.json'. */
  hint?: string
}

/** Reads and parses a JSON file. */
export async function readJsonFile(file: string, options: ReadJsonOptions = {}): Promise<unknown> {
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      if (options.optional) return undefined
      throw new Error(`${file}: not found${options.hint ? `; ${options.hint}` : ''}`)
    }
    throw new Error(`${file}: cannot read (${(e as Error).message})`)
  }
  return parseJson(text, file)
}

/** JSON.parse with the source file named in the error. */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`)
  }
}
