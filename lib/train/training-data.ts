// Which data a run trains on: the file's format (given, or detected and stated in the log), the
// objective that follows from it, and the reader: one sentence per line (SentenceFile), supervised
// pairs/triplets/n-tuples (PairFile), or groups drawn as n-tuples each epoch (GroupFile: FlagEmbedding's JSONL).
import { SentenceFile } from '../data/sentences.js'
import { detectFormat, PairFile } from '../data/pairs.js'
import { DEFAULT_GROUP_NEGATIVES, GroupFile, isGroupedFile } from '../data/groups.js'
import { objectiveForData } from './objective.js'
import type { BatchSampler, ResolvedTrainOptions, TrainOptions } from './options.js'

/** The options with `format` resolved from the data file and the objective chosen for it (see objectiveForData). */
export async function withDataFormat(options: TrainOptions): Promise<TrainOptions> {
  if (typeof options?.data !== 'string' || !options.data) return options
  const format = await detectFormat(options.data, options.format)
  return { ...options, format, objective: objectiveForData(options.objective, format) }
}

/** A run's training data. */
export type TrainingData = SentenceFile | PairFile | GroupFile

/** Opens the run's data as its (resolved) format says, and says what it holds. */
export async function openTrainingData(o: ResolvedTrainOptions, say: (s: string) => void): Promise<TrainingData> {
  const grouped = o.format === 'jsonl' && (await isGroupedFile(o.data))
  if (o.negativesPerExample !== undefined && (o.format === 'text' || o.format === 'auto'))
    throw new TypeError(
      `train: negativesPerExample applies to supervised data with hard negatives (n-tuples, or JSONL objects with query, pos ` +
        `and neg lists); ${o.data} holds sentences`,
    )
  if (o.format === 'text' || o.format === 'auto') {
    const file = await SentenceFile.open(o.data)
    say(`data: ${o.data}: ${file.count} sentences, one per line (text)`)
    return file
  }
  let file: PairFile | GroupFile
  if (grouped) file = await GroupFile.open(o.data, o.negativesPerExample ?? DEFAULT_GROUP_NEGATIVES, o.seed)
  else {
    const tuples = await PairFile.open(o.data, o.format)
    // Fewer negatives than an n-tuple file holds: drawn from them every epoch.
    file = o.negativesPerExample !== undefined ? GroupFile.fromTuples(tuples, o.negativesPerExample, o.seed) : tuples
  }
  say(`data: ${file.describe()}: supervised SimCSE with in-batch${file.width > 2 ? ' and hard' : ''} negatives`)
  return file
}

/** Columns per example of supervised data (views per step), undefined for plain text. */
export function columnsOf(file: TrainingData): number | undefined {
  return file instanceof SentenceFile ? undefined : file.width
}

/**
 * The run's batch sampler: the one given, else 'no-duplicates' for supervised data and 'random' for plain text, where
 * no-duplicates is refused (its lines are read as needed, not held to compare). A run resumed from a checkpoint
 * written before the option existed keeps that run's plain shuffled order ('random').
 */
export function batchSamplerFor(given: BatchSampler | undefined, file: TrainingData, resumedWithout: boolean): BatchSampler {
  if (file instanceof SentenceFile) {
    if (given === 'no-duplicates')
      throw new TypeError(
        'train: batchSampler no-duplicates applies to supervised pairs/triplets; plain text is batched in shuffled order (random)',
      )
    return 'random'
  }
  return given ?? (resumedWithout ? 'random' : 'no-duplicates')
}
