// `simcsepp search`: the corpus file's sentences nearest each query (SentenceEncoder + VectorIndex, or BinaryIndex with
// --binary).
import { readFile } from 'node:fs/promises'
import { openSentences } from '../data/text-source.js'
import { BinaryIndex } from '../embed/binary-index.js'
import { quantizeEmbeddings } from '../embed/quantize.js'
import { VectorIndex, type SearchResult } from '../embed/search.js'
import { searchSimilarity } from '../embed/similarity-fn.js'
import { num, parseFlags, UsageError } from './args.js'
import { resolveDataFlag } from './hub-download.js'
import { encoderFlags, loadEncoder } from './encode-command.js'
import { searchUsage } from './help.js'

/** Corpus lines read and encoded at a time, so that the file's text is never all in memory. */
const CHUNK = 4096

/** simcsepp search --model DIR --corpus FILE [--top-k 5] [--binary [--rescore 4]] [--json] "query" ... */
export async function searchCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(searchUsage, {
    args: argv,
    allowPositionals: true,
    options: {
      ...encoderFlags,
      corpus: { type: 'string' },
      column: { type: 'string' },
      'top-k': { type: 'string' },
      json: { type: 'boolean', default: false },
      binary: { type: 'boolean', default: false },
      rescore: { type: 'string' },
      vectors: { type: 'string' },
    },
  })
  values.corpus = await resolveDataFlag(values.corpus) // (an hf://datasets/... path: downloaded into the cache)
  if (!values.model) throw new UsageError('search: --model DIR is required')
  if (!values.corpus) throw new UsageError('search: --corpus FILE is required (one sentence per line)')
  if (positionals.length === 0) throw new UsageError('search: give at least one query as an argument')
  const topK = num('top-k', values['top-k'], { int: true, min: 1 }) ?? 5
  const rescore = num('rescore', values.rescore, { int: true, min: 0 })
  if (rescore !== undefined && !values.binary) throw new UsageError('search: --rescore applies to --binary')
  // Blank lines are skipped (a corpus has no empty documents); hit indices count the non-blank lines.
  // A Parquet corpus: one of its columns, empty rows skipped as blank lines are.
  // JSON Lines: a field of each object.
  const file = await openSentences(values.corpus, values.column, 'skip')
  const enc = await loadEncoder(values)
  let index: VectorIndex | null = null
  try {
    // --binary keeps only the vectors' signs, packed chunk by chunk: 1/32 of the floats' memory.
    const width = values.binary ? Math.ceil(enc.dimension / 8) : enc.dimension
    const rows = values.binary ? new Uint8Array(file.count * width) : new Float32Array(file.count * width)
    // --vectors: the corpus encoded before (encode --format f32, or --quantize ubinary --format bytes), read, not encoded.
    const stored = values.vectors ? await readStoredVectors(values.vectors, file.count, enc.dimension, values.binary) : null
    if (stored) rows.set(stored as never)
    for (let s = 0; !stored && s < file.count; s += CHUNK) {
      const lines = Array.from({ length: Math.min(CHUNK, file.count - s) }, (_, i) => s + i)
      const vectors = await enc.encode(await file.readLines(lines))
      if (rows instanceof Uint8Array) quantizeEmbeddings(vectors, 'ubinary').forEach((v, i) => rows.set(v, (s + i) * width))
      else vectors.forEach((v, i) => rows.set(v, (s + i) * width))
    }
    const queries = await enc.encode(positionals)
    let results: SearchResult[]
    if (rows instanceof Uint8Array)
      results = BinaryIndex.fromQuantized(rows, enc.dimension).search(queries, { topK, ...(rescore === undefined ? {} : { rescore }) })
    else {
      index = VectorIndex.from(rows, enc.dimension, { similarityFn: searchSimilarity(enc.similarityFn) })
      results = index.search(queries, { topK })
    }
    const hit = [...new Set(results.flatMap((r) => r.indices))]
    const texts = await file.readLines(hit)
    const byIndex = new Map(hit.map((ix, i) => [ix, texts[i]]))
    const out = positionals.map((query, q) => ({
      query,
      hits: results[q].indices.map((ix, j) => ({ index: ix, score: Math.fround(results[q].scores[j]), sentence: byIndex.get(ix)! })),
    }))
    if (values.json) process.stdout.write(JSON.stringify(out, null, 2) + '\n')
    else {
      const text = out.map(
        ({ query, hits }) =>
          `${query}\n${hits.map((h) => `  ${h.score.toFixed(4).padStart(7)}  [${h.index}]  ${h.sentence}`).join('\n')}\n`,
      )
      process.stdout.write(text.join('\n'))
    }
  } finally {
    index?.dispose()
    await file.close()
    await enc.close()
  }
}

/**
 * A corpus's vectors as `simcsepp encode` wrote them: float32 rows (--format f32), or with --binary also ubinary rows
 * (--quantize ubinary --format bytes), told apart by the file's size; float32 rows for --binary are packed here.
 */
async function readStoredVectors(path: string, count: number, dim: number, binary: boolean): Promise<Float32Array | Uint8Array> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (e) {
    throw new UsageError(`search: --vectors ${path}: ${(e as Error).message}`)
  }
  const floats = count * dim * 4,
    bits = count * Math.ceil(dim / 8)
  if (bytes.length === floats) {
    const f = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length))
    if (!binary) return f
    // Checked for finite values, packed: the rows are views of one buffer of them all.
    const packed = quantizeEmbeddings(f, 'ubinary', { dimension: dim })
    return new Uint8Array(packed[0].buffer, packed[0].byteOffset, bits)
  }
  if (binary && bytes.length === bits) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
  throw new UsageError(
    `search: --vectors ${path} holds ${bytes.length} bytes; the corpus's ${count} sentences of ${dim} dimensions are ${floats} ` +
      `as float32 (encode --format f32)${binary ? ` or ${bits} as signs (encode --quantize ubinary --format bytes)` : ''}`,
  )
}
