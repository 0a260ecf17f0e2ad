// Translation matching (sentence-transformers' TranslationEvaluator): parallel pairs (a sentence and its translation:
// its parallel-sentences datasets' english, non_english columns, or anchor, positive) embedded side by side; a pair
// counts as matched from source to target when the source's nearest target by cosine is its own translation (and
// the other way round). The accuracy of a model made multilingual by distillation (--objective distill on parallel
// pairs): how often it finds each sentence's translation among all of them. Also MTEB's bitext mining scores (Tatoeba,
// BUCC, ...: the source-to-target matches' weighted F1, its main score).
import { detectFormat, PairFile } from '../data/pairs.js'
import { VectorIndex } from '../embed/search.js'
import type { Embed } from '../embed/memo-embed.js'
import { isFolder, splitFile } from './table.js'

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
  /**
   * MTEB's bitext mining score of the source-to-target matches (its main score): scikit-learn's support-weighted F1
   * over the target rows; with the weighted precision beside it (the weighted recall is sourceToTarget).
   */
  f1: number
  precision: number
}

/**
 * The pairs of a CSV, TSV, JSON Lines or Parquet file of two named columns (english, non_english, anchor, positive or
 * MTEB's sentence1, sentence2); of a folder of splits (MTEB's test.jsonl.gz, ...), its `split`'s (the pairs then
 * named by the folder).
 */
export async function readTranslationPairs(folderOrFile: string, split = 'test'): Promise<TranslationPairs> {
  const splitPath = isFolder(folderOrFile) ? splitFile(folderOrFile, split) : null
  if (splitPath !== null) return { ...(await readTranslationPairs(splitPath)), file: folderOrFile }
  const path = folderOrFile // (a file, or a folder of one split's Parquet shards)
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

/**
 * Results keyed by `dataset` as the task kinds' are (a translation result names its file, or a multilingual dataset's
 * folder, `file`), for what treats every kind alike: main scores, tables, TensorBoard tags.
 */
export const byDataset = <R extends { file: string }>(results: R[] | undefined) => (results ?? []).map((r) => ({ ...r, dataset: r.file }))

/** Each row's nearest neighbour (cosine) among `to` (ties: the lower index). */
function nearest(from: Float32Array[], to: Float32Array[]): number[] {
  const index = VectorIndex.from(to)
  try {
    return index.search(from, { topK: 1 }).map((h) => h.indices[0])
  } finally {
    index.dispose()
  }
}

/**
 * MTEB's bitext mining scores of the predictions (row i's gold is i): scikit-learn's support-weighted precision, recall
 * and F1 over the gold rows (zero_division 0). Every gold row has support 1, so recall is the accuracy, and row j
 * predicted by c_j rows has precision 1/c_j where it is among them (else 0) and F1 2/(1 + c_j) (else 0).
 */
export function bitextScores(predicted: ArrayLike<number>): { precision: number; recall: number; f1: number } {
  const n = predicted.length
  const count = new Float64Array(n)
  for (let i = 0; i < n; i++) count[predicted[i]]++
  let [precision, recall, f1] = [0, 0, 0]
  for (let j = 0; j < n; j++)
    if (predicted[j] === j) {
      precision += 1 / count[j]
      recall += 1
      f1 += 2 / (1 + count[j])
    }
  return { precision: precision / n, recall: recall / n, f1: f1 / n }
}

export async function evaluateTranslation(embed: Embed, pairs: TranslationPairs): Promise<TranslationResult> {
  const n = pairs.source.length
  if (n === 0) throw new Error(`${pairs.file}: no pairs`)
  const [source, target] = [await embed(pairs.source), await embed(pairs.target)]
  const forward = nearest(source, target)
  const share = (p: number[]) => p.filter((j, i) => j === i).length / n
  const [sourceToTarget, targetToSource] = [share(forward), share(nearest(target, source))]
  const { precision, f1 } = bitextScores(forward)
  return { file: pairs.file, pairs: n, sourceToTarget, targetToSource, accuracy: (sourceToTarget + targetToSource) / 2, f1, precision }
}
