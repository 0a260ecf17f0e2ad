// Translation matching (sentence-transformers' TranslationEvaluator): parallel pairs (a sentence and its translation:
// its parallel-sentences datasets' english, non_english columns, or anchor, positive) embedded side by side; a pair
// counts as matched from source to target when the source's nearest target by cosine is its own translation (and
// the other way round). The accuracy of a model made multilingual by distillation (--objective distill on parallel
// pairs): how often it finds each sentence's translation among all of them.
import { detectFormat, PairFile } from '../data/pairs.js'
import { VectorIndex } from '../embed/search.js'
import type { Embed } from '../embed/memo-embed.js'

export interface TranslationPairs {
  file: string
  source: string[]
  target: string[]
}

export interface TranslationResult {
  file: string
  pairs: number
  /** Fractions of the pairs whose source finds its target (and the reverse) as its nearest neighbour. */
  sourceToTarget: number
  targetToSource: number
  /** Their mean: sentence-transformers' TranslationEvaluator's score. */
  accuracy: number
}

/** The pairs of a CSV, TSV, JSON Lines or Parquet file of two named columns (english, non_english or anchor, positive). */
export async function readTranslationPairs(path: string): Promise<TranslationPairs> {
  const format = await detectFormat(path)
  if (format === 'text')
    throw new Error(
      `${path}: translation pairs need two named columns (english, non_english or anchor, positive) in CSV, TSV, JSONL or Parquet`,
    )
  const file = await PairFile.open(path, format)
  if (file.width !== 2)
    throw new Error(`${path}: translation pairs have two columns (a sentence, its translation); this file has ${file.width}`)
  const rows = Array.from({ length: file.count }, (_, i) => file.textsOf(i))
  return { file: path, source: rows.map((r) => r[0]), target: rows.map((r) => r[1]) }
}

/** The share of rows whose nearest neighbour (cosine) among `to` is the row of the same index (ties: the lower index). */
function matched(from: Float32Array[], to: Float32Array[]): number {
  const index = VectorIndex.from(to)
  try {
    return index.search(from, { topK: 1 }).filter((h, i) => h.indices[0] === i).length / from.length
  } finally {
    index.dispose()
  }
}

export async function evaluateTranslation(embed: Embed, pairs: TranslationPairs): Promise<TranslationResult> {
  const n = pairs.source.length
  if (n === 0) throw new Error(`${pairs.file}: no pairs`)
  const [source, target] = [await embed(pairs.source), await embed(pairs.target)]
  const sourceToTarget = matched(source, target)
  const targetToSource = matched(target, source)
  return { file: pairs.file, pairs: n, sourceToTarget, targetToSource, accuracy: (sourceToTarget + targetToSource) / 2 }
}
