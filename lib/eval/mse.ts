// Distillation's own measure (sentence-transformers' MSEEvaluator): the mean squared difference between the teacher's
// vectors of source sentences and the student's vectors of their targets, over every value of every vector. Targets
// are translations of the sources (make_multilingual: the student learns to put a sentence and its translation where
// the teacher puts the sentence), or the sources themselves (model_distillation: a smaller student). It says how far
// the student is from what it is taught, on sentences it did not train on; lower is better, and sentence-transformers
// reports it negated and ×100 (`negative_mse`), so that greater is better as for every other score.
import { detectFormat } from '../data/pairs.js'
import { readTextLines } from '../data/text-lines.js'
import type { Embed } from '../embed/memo-embed.js'
import { isFolder } from './table.js'
import { readTranslationPairs } from './translation.js'

export interface MseSentences {
  file: string
  /** What the teacher encodes. */
  source: string[]
  /** What the student encodes, row for row (the sources themselves for a file of single sentences). */
  target: string[]
}

export interface MseResult {
  file: string
  sentences: number
  /** The mean of (teacher - student)² over the N×D values (sentence-transformers' score is -100 × mse). */
  mse: number
}

/**
 * The sentences of a file: parallel pairs as --eval-translation reads them (a sentence and its translation: CSV, TSV,
 * JSONL or Parquet of two named columns; a folder's `split`), or a text file of one sentence per line (each its own
 * target).
 */
export async function readMseSentences(path: string, split?: string): Promise<MseSentences> {
  if (isFolder(path) || (await detectFormat(path)) !== 'text') return readTranslationPairs(path, split)
  const lines = (await readTextLines(path)).filter((s) => s.trim() !== '')
  if (!lines.length) throw new Error(`${path}: no sentences`)
  return { file: path, source: lines, target: lines }
}

/**
 * The MSE between the teacher's vectors of the sources (`teacher`, [N, D] row-major) and `student`'s of the targets
 * (float64 sums).
 */
export async function evaluateMse(student: Embed, teacher: Float32Array, set: MseSentences): Promise<MseResult> {
  const n = set.target.length
  const rows = await student(set.target)
  const d = teacher.length / n
  if (!Number.isInteger(d) || rows.some((v) => v.length !== d))
    throw new Error(`${set.file}: the teacher's vectors have ${d} values, the model's ${rows[0]?.length}: they must be as wide`)
  let sum = 0
  rows.forEach((v, i) => {
    for (let j = 0; j < d; j++) {
      const e = teacher[i * d + j] - v[j]
      sum += e * e
    }
  })
  return { file: set.file, sentences: n, mse: sum / (n * d) }
}
