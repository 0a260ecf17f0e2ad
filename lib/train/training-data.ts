// Which data a run trains on: the file's format (given, or detected and stated in the log), the
// objective that follows from it, and the reader: one sentence per line (SentenceFile) or a Parquet column of them
// (TextColumn), supervised pairs/triplets/n-tuples (PairFile), or groups drawn as n-tuples each epoch (GroupFile:
// FlagEmbedding's JSONL).
import { SentenceFile } from '../data/sentences.js'
import { columnsOf as supervisedColumnsOf, detectFormat, PairFile } from '../data/pairs.js'
import { noTextColumn, parquetColumns, parquetTextColumn, textColumnOf, type TextColumn } from '../data/parquet.js'
import { jsonlKeys } from '../data/text-source.js'
import { DEFAULT_GROUP_NEGATIVES, GroupFile, isGroupedFile } from '../data/groups.js'
import { DEFAULT_OBJECTIVE, objectiveForData, SCORED_OBJECTIVES, type Objective } from './objective.js'
import type { BatchSampler, ResolvedTrainOptions, TrainOptions } from './options.js'
import { perDataset } from './datasets.js'
import type { DataFormat } from '../data/pairs.js'

/**
 * The options with `format` resolved from the data file and the objective chosen for it (see objectiveForData). A
 * Parquet or JSON Lines file holds sentences (unsupervised, as a text file's lines) when `column` names one of its
 * columns (fields), or when they are not named as pairs are (nor as FlagEmbedding's groups) and one holds the text (the
 * only one, or text, sentence, ...): `column` is then set to it, so that a resumed run reads the same one. Otherwise it
 * holds supervised examples.
 */
export async function withDataFormat(options: TrainOptions): Promise<TrainOptions> {
  if (!Array.isArray(options?.data)) return withFileFormat(options)
  const paths = options.data
  const perFile = [options.format, options.column, options.objective, options.queryPrompt, options.documentPrompt]
  if (paths.length === 1 && !perFile.some((v) => Array.isArray(v) && v.length !== 1))
    return withFileFormat({ ...options, data: paths[0], ...firstOfEach(options) })
  if (paths.length === 0 || paths.some((p) => typeof p !== 'string' || !p)) return options // resolveTrainOptions names the error
  const formats = perDataset('format', options.format, paths.length)
  const columns = perDataset('column', options.column, paths.length)
  const objectives = perDataset('objective', options.objective, paths.length)
  const each: TrainOptions[] = []
  for (let i = 0; i < paths.length; i++) {
    // The prompts stay per dataset (resolveTrainOptions splits them); reading a file needs none.
    const one = {
      ...options,
      data: paths[i],
      format: formats[i],
      column: columns[i] || undefined,
      objective: objectives[i],
      queryPrompt: undefined,
      documentPrompt: undefined,
    }
    try {
      each.push(await withFileFormat(one))
    } catch (e) {
      // Which file, when several are read.
      if (e instanceof Error && !e.message.includes(paths[i])) e.message = `${paths[i]}: ${e.message}`
      throw e
    }
  }
  return {
    ...options,
    format: each.map((d) => d.format as DataFormat),
    column: each.map((d) => d.column ?? null) as string[],
    objective: each.map((d) => (d.objective as Objective | undefined) ?? DEFAULT_OBJECTIVE),
  }
}

/** An array option of one value as that value (data given as a list of one file trains as that file). */
function firstOfEach(o: TrainOptions): Partial<TrainOptions> {
  const first = <T>(v: T | T[] | undefined) => (Array.isArray(v) ? v[0] : v)
  return {
    format: first(o.format),
    column: first(o.column) ?? undefined,
    objective: first(o.objective),
    queryPrompt: first(o.queryPrompt) || undefined,
    documentPrompt: first(o.documentPrompt) || undefined,
  }
}

/** withDataFormat for one data file. */
async function withFileFormat(options: TrainOptions): Promise<TrainOptions> {
  if (typeof options?.data !== 'string' || !options.data) return options
  if (
    Array.isArray(options.format) ||
    Array.isArray(options.column) ||
    Array.isArray(options.objective) ||
    Array.isArray(options.queryPrompt) ||
    Array.isArray(options.documentPrompt)
  )
    throw new TypeError('train: format, column, objective and the prompts take one value per data file: give data as an array of files')
  const format = await detectFormat(options.data, options.format)
  if (format !== 'parquet' && format !== 'jsonl') {
    if (options.column !== undefined)
      throw new TypeError(`train: column names a column of Parquet data or a field of JSON Lines; ${options.data} is read as ${format}`)
    return { ...options, format, objective: objectiveForData(options.objective, format) }
  }
  const column = await sentenceColumn(options.data, format, options.column)
  return { ...options, format, column, objective: objectiveForData(options.objective, column === undefined ? format : 'text') }
}

/** The column (field) of sentences of a Parquet (JSON Lines) training file, undefined when it holds supervised examples. */
async function sentenceColumn(path: string, format: 'parquet' | 'jsonl', column: string | undefined): Promise<string | undefined> {
  if (column !== undefined && typeof column !== 'string')
    throw new TypeError(`train: column must be a string (got ${JSON.stringify(column)})`)
  // JSON Lines: the first object's keys (a line that is no object is the pairs reader's to name).
  const names = format === 'parquet' ? (await parquetColumns(path)).names : await jsonlKeys(path)
  if (names === null) return undefined
  if (column === undefined && (supervisedColumnsOf(names) || (format === 'jsonl' && (await isGroupedFile(path))))) return undefined
  const name = textColumnOf(names, column)
  if (name === undefined) {
    if (column !== undefined) throw noTextColumn(path, names, column)
    throw new Error(
      `${path}: neither supervised examples (columns anchor, positive[, negative...] or sent0, sent1[, hard_neg]) nor one ` +
        `column of sentences: pass --column NAME to train on one (its columns: ${names.join(', ')})`,
    )
  }
  return name
}

/** A run's training data. */
export type TrainingData = SentenceFile | TextColumn | PairFile | GroupFile

/** Unsupervised data (sentences, each encoded as two dropout views), not supervised examples. */
function isSentences(file: TrainingData): file is SentenceFile | TextColumn {
  return !(file instanceof PairFile || file instanceof GroupFile)
}

/** Opens the run's data as its (resolved) format says, and says what it holds. */
export async function openTrainingData(o: ResolvedTrainOptions, say: (s: string) => void): Promise<TrainingData> {
  const grouped = o.format === 'jsonl' && (await isGroupedFile(o.data))
  const sentences = o.format === 'text' || o.format === 'auto' || o.column !== undefined
  if (o.negativesPerExample !== undefined && sentences)
    throw new TypeError(
      `train: negativesPerExample applies to supervised data with hard negatives (n-tuples, or JSONL objects with query, pos ` +
        `and neg lists); ${o.data} holds sentences`,
    )
  if (o.column !== undefined) {
    if (o.format === 'jsonl') {
      const lines = await SentenceFile.open(o.data, { field: o.column })
      say(`data: ${o.data}: ${lines.count} sentences, field ${o.column} (jsonl)`)
      return lines
    }
    const column = await parquetTextColumn(o.data, o.column, 'skip')
    say(`data: ${o.data}: ${column.count} sentences, column ${column.column} (parquet)`)
    return column
  }
  if (o.format === 'text' || o.format === 'auto') {
    const file = await SentenceFile.open(o.data)
    say(`data: ${o.data}: ${file.count} sentences, one per line (text)`)
    return file
  }
  let file: PairFile | GroupFile
  if (SCORED_OBJECTIVES.includes(o.objective)) {
    if (grouped)
      throw new TypeError(`train: objective ${o.objective} trains on scored pairs (sentence1, sentence2, score); ${o.data} holds groups`)
    if (o.negativesPerExample !== undefined)
      throw new TypeError('train: negativesPerExample applies to hard negatives, not to scored pairs')
    const pairs = await PairFile.open(o.data, o.format, { scores: true })
    say(`data: ${pairs.describe()}: ${o.objective === 'angle' ? 'AnglE' : 'CoSENT'} over the order of the scores`)
    return pairs
  }
  if (o.objective === 'distill') {
    if (grouped || o.negativesPerExample !== undefined)
      throw new TypeError(
        `train: objective distill trains on sentences or parallel pairs (a sentence, its translation); ${o.data} holds ${grouped ? 'groups' : 'hard negatives'}`,
      )
    const pairs = await PairFile.open(o.data, o.format)
    if (pairs.width !== 2)
      throw new TypeError(
        `train: objective distill trains on sentences or parallel pairs (a sentence, its translation); ${o.data} has ${pairs.width} columns`,
      )
    say(`data: ${pairs.describe()}: distillation, both sentences of each pair taught the teacher's vector of the first`)
    return pairs
  }
  if (grouped) file = await GroupFile.open(o.data, o.negativesPerExample ?? DEFAULT_GROUP_NEGATIVES, o.seed)
  else {
    const tuples = await PairFile.open(o.data, o.format)
    if (tuples.scoreColumn !== null && tuples.width === 2)
      say(
        `data: ${o.data}: its ${tuples.scoreColumn} column is not used: objective simcse takes every pair as a positive ` +
          `(--objective cosent or angle trains on the scores)`,
      )
    // Fewer negatives than an n-tuple file holds: drawn from them every epoch.
    file = o.negativesPerExample !== undefined ? GroupFile.fromTuples(tuples, o.negativesPerExample, o.seed) : tuples
  }
  say(`data: ${file.describe()}: supervised SimCSE with in-batch${file.width > 2 ? ' and hard' : ''} negatives`)
  return file
}

/** Columns per example of supervised data (views per step), undefined for plain text. */
export function columnsOf(file: TrainingData): number | undefined {
  return isSentences(file) ? undefined : file.width
}

/**
 * The run's batch sampler: the one given, else 'no-duplicates' for supervised data and 'random' for plain text, where
 * no-duplicates is refused (its lines are read as needed, not held to compare). A run resumed from a checkpoint
 * written before the option existed keeps that run's plain shuffled order ('random').
 */
export function batchSamplerFor(given: BatchSampler | undefined, file: TrainingData, resumedWithout: boolean): BatchSampler {
  if (isSentences(file)) {
    if (given === 'no-duplicates')
      throw new TypeError(
        'train: batchSampler no-duplicates applies to supervised pairs/triplets; plain text is batched in shuffled order (random)',
      )
    return 'random'
  }
  // Scored pairs have no in-batch negatives for a repeat to spoil: plain shuffled batches, as sentence-transformers.
  if (file instanceof PairFile && file.scores) return given ?? 'random'
  return given ?? (resumedWithout ? 'random' : 'no-duplicates')
}

/** A dataset's batch sampler in a run of several: the one given applies to supervised data; sentences are shuffled (random). */
export function datasetBatchSampler(given: BatchSampler | undefined, file: TrainingData): BatchSampler {
  return isSentences(file) ? 'random' : batchSamplerFor(given, file, false)
}
