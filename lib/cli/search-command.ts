// `simcsepp search`: the corpus file's sentences nearest each query (SentenceEncoder + VectorIndex).
import { openSentences } from '../data/text-source.js'
import { VectorIndex } from '../embed/search.js'
import { num, parseFlags, UsageError } from './args.js'
import { encoderFlags, loadEncoder } from './encode-command.js'
import { searchUsage } from './help.js'

/** Corpus lines read and encoded at a time, so that the file's text is never all in memory. */
const CHUNK = 4096

/** simcsepp search --model DIR --corpus FILE [--top-k 5] [--json] "query" ... */
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
    },
  })
  if (!values.model) throw new UsageError('search: --model DIR is required')
  if (!values.corpus) throw new UsageError('search: --corpus FILE is required (one sentence per line)')
  if (positionals.length === 0) throw new UsageError('search: give at least one query as an argument')
  const topK = num('top-k', values['top-k'], { int: true, min: 1 }) ?? 5
  // Blank lines are skipped (a corpus has no empty documents); hit indices count the non-blank lines.
  // A Parquet corpus: one of its columns, empty rows skipped as blank lines are.
  // JSON Lines: a field of each object.
  const file = await openSentences(values.corpus, values.column, 'skip')
  const enc = await loadEncoder(values)
  let index: VectorIndex | null = null
  try {
    const vectors = new Float32Array(file.count * enc.dimension)
    for (let s = 0; s < file.count; s += CHUNK) {
      const lines = Array.from({ length: Math.min(CHUNK, file.count - s) }, (_, i) => s + i)
      ;(await enc.encode(await file.readLines(lines))).forEach((v, i) => vectors.set(v, (s + i) * enc.dimension))
    }
    index = VectorIndex.from(vectors, enc.dimension)
    const results = index.search(await enc.encode(positionals), { topK })
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
