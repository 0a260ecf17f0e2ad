// For `simcsepp encode`: text lines in, one vector per non-blank line out (JSON Lines or TSV), in
// chunks so that memory stays bounded for large files.
import { SentenceEncoder, type SentenceEncoderOptions } from './sentence-encoder.js'

export interface EncodeLinesOptions extends SentenceEncoderOptions {
  /** 'jsonl' (default): {"line": n, "text": ..., "vector": [...]} per line; 'tsv': n, then the vector's numbers, tab-separated. */
  format?: 'jsonl' | 'tsv'
  /** Lines encoded per round (length sorting happens within a round). Default 4096. */
  chunk?: number
  /** Called after each round with the lines done so far. */
  progress?: (done: number, total: number) => void
}

export interface EncodeLinesResult {
  /** Vectors written (blank lines are skipped). */
  encoded: number
  skipped: number
  dimension: number
  device: 'cpu' | 'cuda'
  seconds: number
}

/** Encodes `lines` (1-based line numbers are kept) with the model in `dir`, handing the output text to `write`. */
export async function encodeLines(dir: string, lines: readonly string[], write: (text: string) => void | Promise<void>,
  options: EncodeLinesOptions = {}): Promise<EncodeLinesResult> {
  const { format = 'jsonl', chunk = 4096, progress, ...encoderOptions } = options
  if (format !== 'jsonl' && format !== 'tsv') throw new Error(`encodeLines: format must be 'jsonl' or 'tsv', got ${JSON.stringify(format)}`)
  if (!Number.isSafeInteger(chunk) || chunk < 1) throw new Error(`encodeLines: chunk must be a positive integer, got ${chunk}`)
  const t0 = performance.now()
  const enc = await SentenceEncoder.load(dir, encoderOptions)
  let encoded = 0, skipped = 0
  try {
    for (let s = 0; s < lines.length; s += chunk) {
      const numbers: number[] = [], texts: string[] = []
      for (let i = s; i < Math.min(lines.length, s + chunk); i++) {
        const text = lines[i].replace(/\r$/, '')
        if (text.trim() === '') skipped++
        else {
          numbers.push(i + 1)
          texts.push(text)
        }
      }
      const vectors = await enc.encode(texts)
      let out = ''
      for (let j = 0; j < texts.length; j++) {
        const v = Array.from(vectors[j])
        out += format === 'jsonl' ? JSON.stringify({ line: numbers[j], text: texts[j], vector: v }) + '\n' : `${numbers[j]}\t${v.join('\t')}\n`
      }
      if (out) await write(out)
      encoded += texts.length
      progress?.(Math.min(lines.length, s + chunk), lines.length)
    }
    return { encoded, skipped, dimension: enc.dimension, device: enc.device, seconds: (performance.now() - t0) / 1000 }
  } finally {
    await enc.close()
  }
}
