// train()'s options: their defaults (the recipe of docs/method.md §6), validation (unknown names are
// errors), and the ones a resumed run must share with the run it continues.
import type { BertConfig, NamedConfig } from '../model/config.js'
import { DEVICE_REQUESTS, type DeviceRequest } from '../device.js'
import type { Precision } from '../native.js'
import { PRECISION_REQUESTS } from '../model/precision.js'
import { inRange, rangeMessage, type NumberRange } from '../util/number-range.js'
import { DEFAULT_OBJECTIVE, OBJECTIVES, type Objective } from './objective.js'
import { DATA_FORMATS, type DataFormat } from '../data/pairs.js'
import { checkMatryoshkaOptions } from './matryoshka-options.js'
import { LR_SCHEDULES, type LrSchedule } from '../optim/adamw.js'
import { DATASET_SAMPLERS, perDataset, type DatasetSampler, type DatasetSpec } from './datasets.js'
import { isPooling, POOLING_LIST, type Pooling } from '../model/pooling.js'

export const BATCH_SAMPLERS = ['no-duplicates', 'random'] as const
export type BatchSampler = (typeof BATCH_SAMPLERS)[number]

export interface TrainOptions {
  /** A Hugging Face BERT/RoBERTa/DistilBERT directory to start from... */
  model?: string
  /**
   * With model: only these of its encoder layers, by index in increasing order, renumbered from 0 (a smaller student
   * initialised from its teacher, as sentence-transformers' model_distillation example keeps layers [1, 4, 7, 10] of
   * BERT-base's twelve). The output is the smaller model.
   */
  keepLayers?: number[]
  /** ...or a named size (or full config) to initialise randomly. */
  config?: NamedConfig | BertConfig
  /** Tokenizer directory or file (tokenizer.json / vocab.txt); default: the model's, or one built from the data. */
  tokenizer?: string
  /**
   * One sentence per line, UTF-8; or supervised pairs, triplets and n-tuples (CSV/TSV with a header, JSONL, Parquet),
   * or FlagEmbedding's groups (JSONL: query, pos [...], neg [...]). Several files: several datasets, each step a
   * batch of one of them with its own objective (datasetSampler says which); format, column and objective may then
   * be given once for all or as arrays, one per file.
   */
  data: string | string[]
  /** How `data` is read: 'auto' (default) detects it from the extension or the first line. */
  format?: DataFormat | 'auto' | (DataFormat | 'auto')[]
  /**
   * Parquet data: the column of sentences to train on without supervision, as a text file's lines (default: the
   * file's only column, or one named text, sentence, document, passage or content, when its columns are not
   * named as supervised pairs are).
   */
  column?: string | string[]
  /**
   * Several datasets: which one each step draws its batch from. 'proportional' (default): every batch of every
   * dataset once per epoch, in a seeded random order (larger datasets more often); 'round-robin': the datasets
   * in turn, as many times each per epoch as the smallest has batches.
   */
  datasetSampler?: DatasetSampler
  /**
   * How supervised pairs/triplets are batched: 'no-duplicates' (their default) arranges each epoch so that no
   * batch holds a sentence twice (a repeated sentence would be its own in-batch negative: sentence-transformers'
   * NoDuplicatesBatchSampler); 'random' takes plain slices of the shuffled order (plain text always does).
   */
  batchSampler?: BatchSampler
  /**
   * Grouped data (FlagEmbedding's JSONL: query, pos [...], neg [...]): the hard negatives each example is drawn
   * with every epoch (its train_group_size - 1; default 7). n-tuples: that many of each example's negatives drawn
   * every epoch (default: all of them, in their columns). Refused for plain text and pairs.
   */
  negativesPerExample?: number
  /**
   * Supervised data: symmetric InfoNCE (sentence-transformers' MultipleNegativesSymmetricRankingLoss), the mean of
   * the anchors' loss and each positive's InfoNCE against the batch's anchors. Default false.
   */
  symmetric?: boolean
  /** Several datasets: one objective for all, or one per dataset (default: each one's, as for a single file). */
  objective?: Objective | Objective[]
  /**
   * Objective distill: the teacher, a sentence-transformers (or Hugging Face) model directory whose vectors the
   * model learns to reproduce (its width must be the model's). Required by distill, refused otherwise.
   */
  teacher?: string
  temperature?: number
  posScale?: number
  dclWeight?: number
  dclTemperature?: number
  /**
   * Supervised pairs/triplets: a prompt prepended to every anchor (e5's 'query: ') and one to every positive and hard
   * negative (e5's 'passage: '), as sentence-transformers' training prompts; the output saves them as its 'query' and
   * 'document' prompts, so encodeQuery and encodeDocument (and the retrieval evaluation) apply them. With several
   * datasets: one for all, or one per dataset ('' for none).
   */
  queryPrompt?: string | string[]
  documentPrompt?: string | string[]
  /**
   * Matryoshka training: the objective over the first d dimensions of the vectors for each d listed (each at
   * most the hidden size; the hidden size itself to train the whole vectors too), weighted and summed, so that
   * vectors cut to any of them (SentenceEncoder's truncateDim) stay good; e.g. [768, 512, 256, 128, 64].
   */
  matryoshkaDims?: number[]
  /** The weight of each of matryoshkaDims' losses (default: 1 each). */
  matryoshkaWeights?: number[]
  /** Overrides every dropout probability of the model (hidden and attention; ModernBERT's embedding one too). */
  dropout?: number
  batchSize?: number
  /**
   * Rows (of the V·N stacked views) per encoder pass: 0 runs the whole batch at once; M > 0 runs it in
   * micro-batches of M rows twice (forward for the vectors, then forward again and backward per
   * micro-batch with its slice of the whole batch's loss gradient): activation memory of M rows, the
   * gradients of the whole batch (dropout masks do not depend on M). 'auto' (default) runs the whole batch
   * while its activations fit a budget (CPU: min(4 GiB, a quarter of the machine's memory); CUDA: 3/4 of
   * the GPU's free memory) and otherwise the largest pass that fits: splitting costs a second forward
   * (about a quarter more compute), which pays only when the batch could not run whole.
   */
  microBatch?: number | 'auto'
  maxLen?: number
  lr?: number
  epochs?: number
  /** Stop after this many steps (0 writes the initialised model). Default: epochs over the data. */
  steps?: number
  warmup?: number
  /**
   * The warm-up as a fraction of the run's steps (transformers' warmup_ratio; 0.1 is a common recipe), in [0, 1): the
   * warm-up is then round(warmupRatio × steps) steps. Give warmup or warmupRatio, not both.
   */
  warmupRatio?: number
  /** The learning rate after the warm-up: 'linear' decay to 0 (default), 'cosine' (half a period, to 0), 'constant'. */
  lrSchedule?: LrSchedule
  weightDecay?: number
  gradClip?: number
  seed?: number
  device?: DeviceRequest
  /**
   * Precision of the encoder's linear-layer products: 'bf16' (tensor cores; fp32 master weights, AdamW
   * moments, LayerNorm, softmax and losses), 'fp32', or 'auto' (default): bf16 on CUDA, fp32 on the CPU.
   */
  precision?: Precision | 'auto'
  /** STS files (STS-B, SICK, STS12–16) evaluated every evalEvery steps; the first selects the best model (selectBy). */
  evalFiles?: string[]
  /**
   * Retrieval sets (BEIR folders: corpus.jsonl, queries.jsonl, qrels/dev.tsv or test.tsv) scored at each evaluation:
   * nDCG@10, MRR@10, Recall@100 of exact cosine search; without evalFiles the first one's nDCG@10 selects the best model (selectBy).
   */
  evalRetrieval?: string[]
  /**
   * MTEB's other task kinds, scored at each evaluation as `simcsepp eval` scores them (lib/eval/): classification
   * (accuracy of a logistic regression), clustering (V-measure of k-means), pair classification (AP), reranking (MAP),
   * summarization (cosine Spearman). Each a file, or a folder of splits whose validation or dev split is scored where
   * it has one (else its test split).
   */
  evalClassification?: string[]
  evalClustering?: string[]
  evalPairClassification?: string[]
  evalReranking?: string[]
  evalSummarization?: string[]
  /**
   * Parallel sentences (english,non_english or anchor,positive; MTEB's bitext mining sentence1,sentence2), scored at
   * each evaluation as `simcsepp eval --translation` scores them: each source's nearest target (and the reverse), and
   * MTEB's bitext mining F1 (the main score), the texts with the model's BitextMining prompt, else its default prompt.
   * A file, or a folder as the task kinds' (its validation, dev or else test split; a folder per language pair).
   */
  evalTranslation?: string[]
  /**
   * Objective distill: sentences whose teacher vectors the model is measured against at each evaluation
   * (sentence-transformers' MSEEvaluator): parallel pairs as evalTranslation reads them (the teacher's vectors of the
   * first column against the model's of the second), or a text file of one sentence per line (each against itself).
   * The mean squared difference over every value, reported negated and ×100 as sentence-transformers reports it
   * (`negative_mse`, greater is better), which selects with selectBy 'mse'. Not counted by the means (not an MTEB task).
   */
  evalMse?: string[]
  /**
   * Which evaluation selects the best model: the first set of this kind, by its main score (STS: Spearman; retrieval:
   * nDCG@10; classification: accuracy; clustering: V-measure; pair classification: AP; reranking: MAP;
   * summarization: cosine Spearman; translation: bitext mining F1; mse: the negative MSE); or 'mean', the mean of every set's main score
   * (MTEB's average over tasks; STS Spearman as a fraction, a multilingual dataset once, by its subsets' mean); or
   * 'mean-type', the mean of each task kind's mean (MTEB's Mean (TaskType): a kind of many sets weighs as much as one
   * of a single set). Default: the first kind given, in that order.
   */
  selectBy?: SelectBy
  evalEvery?: number
  /**
   * Classification sets' draws at each evaluation (of `samplesPerLabel` 32 training rows per label, each fitting a
   * logistic regression): MTEB's 10 by default; fewer make an evaluation cheaper where steps are fast (a GPU), its
   * accuracy then the mean of fewer draws. A set of one file is scored by its 10 folds whatever this is.
   */
  evalExperiments?: number
  /**
   * Early stopping: end the run once this many evaluations in a row have not beaten the best one (transformers'
   * EarlyStoppingCallback patience); the output then holds that best model. 0 (default): run every step.
   */
  earlyStopping?: number
  out: string
  saveEvery?: number
  /** Continue from this output (or checkpoint) directory. */
  resume?: string
  /** Start over in an `out` that already holds a run, deleting its checkpoint and logs. Default false. */
  overwrite?: boolean
  /**
   * Also write the run's log as a TensorBoard event file, out/run/tensorboard/ (`tensorboard --logdir` it): the losses,
   * learning rate, gradient norm, throughput, alignment and uniformity of every step, and every evaluation. Default false.
   */
  tensorboard?: boolean
  /** Vocabulary size when the tokenizer is built from the data. */
  vocabSize?: number
  /**
   * Sentence vector under the MLP head and at evaluation: 'cls' (SimCSE), 'mean' over tokens, 'max' (each
   * dimension's largest value over tokens) or 'mean_sqrt_len' (the sum over sqrt(tokens)), sentence-transformers'
   * modes. Default: the model's sentence-transformers pooling (1_Pooling) when it has one, else 'cls'.
   */
  pooling?: Pooling
  /**
   * Data-parallel training over MPI ranks (lib/distributed/): true requires MPI, false never uses it, 'auto'
   * (default) uses it when an MPI launcher started this process with more than one rank. batchSize is
   * then the global batch; rank 0 alone writes the output and reports through the hooks, and an error on
   * any rank ends the whole job (MPI_Abort) rather than leaving the others waiting.
   */
  distributed?: boolean | 'auto'
}

/** The options that stay optional once resolved (no default: absent means unset, or decided by the data or the model). */
type UnsetByDefault =
  | 'model'
  | 'keepLayers'
  | 'config'
  | 'tokenizer'
  | 'steps'
  | 'resume'
  | 'dropout'
  | 'matryoshkaDims'
  | 'matryoshkaWeights'
  | 'column'
  | 'batchSampler'
  | 'negativesPerExample'
  | 'queryPrompt'
  | 'documentPrompt'
  | 'selectBy'

type PerDataset = 'data' | 'format' | 'column' | 'objective' | 'queryPrompt' | 'documentPrompt'

/**
 * The options resolved. data, format, column and objective are the first dataset's (a run's only one, as a single
 * file is trained); `datasets` holds every dataset's, in order.
 */
export type ResolvedTrainOptions = Required<
  Omit<TrainOptions, UnsetByDefault | PerDataset | 'datasetSampler' | EvalSetOption | 'overwrite'>
> &
  Pick<TrainOptions, Exclude<UnsetByDefault, 'column' | 'queryPrompt' | 'documentPrompt'>> &
  DatasetSpec & {
    datasets: DatasetSpec[]
    datasetSampler: DatasetSampler
    overwrite: boolean
  } & { [K in EvalSetOption]: string[] }

/** The options that list evaluation sets, in the order their kinds select the model by default. */
export const EVAL_SET_OPTIONS = [
  'evalFiles',
  'evalRetrieval',
  'evalClassification',
  'evalClustering',
  'evalPairClassification',
  'evalReranking',
  'evalSummarization',
  'evalTranslation',
  'evalMse',
] as const
type EvalSetOption = (typeof EVAL_SET_OPTIONS)[number]

/** The options whose sets the means (selectBy 'mean', 'mean-type') average: MTEB's task kinds (not distillation's MSE). */
export const MEAN_SET_OPTIONS = EVAL_SET_OPTIONS.filter((k) => k !== 'evalMse')

/**
 * selectBy's values: a kind of set, each that of the option in EVAL_SET_OPTIONS at its index, whose first set selects;
 * or 'mean', the mean of every set's main score (MTEB's Mean (Task)), or 'mean-type', of each kind's mean (Mean (TaskType)).
 */
export const SELECT_BY = [
  'sts',
  'retrieval',
  'classification',
  'clustering',
  'pair-classification',
  'reranking',
  'summarization',
  'translation',
  'mse',
  'mean',
  'mean-type',
] as const
export type SelectBy = (typeof SELECT_BY)[number]

/** What selects the model: selectBy, else the first kind with sets; undefined without any set. */
export function selectionKind(o: ResolvedTrainOptions): SelectBy | undefined {
  if (!EVAL_SET_OPTIONS.some((k) => o[k].length > 0)) return undefined
  return o.selectBy ?? SELECT_BY[EVAL_SET_OPTIONS.findIndex((k) => o[k].length > 0)]
}

/** The options of a run as it trains on dataset `d` (one of o.datasets): that dataset's data, format, column and objective. */
export function forDataset(o: ResolvedTrainOptions, d: DatasetSpec): ResolvedTrainOptions {
  return {
    ...o,
    data: d.data,
    format: d.format,
    column: d.column,
    objective: d.objective,
    queryPrompt: d.queryPrompt,
    documentPrompt: d.documentPrompt,
  }
}

/** The per-dataset options as a run records them: the values of its only dataset, or arrays, one per dataset. */
export function recordedDatasets(o: ResolvedTrainOptions): Record<PerDataset, unknown> {
  const ds = o.datasets
  if (ds.length === 1)
    return {
      data: ds[0].data,
      format: ds[0].format,
      column: ds[0].column ?? null,
      objective: ds[0].objective,
      queryPrompt: ds[0].queryPrompt ?? null,
      documentPrompt: ds[0].documentPrompt ?? null,
    }
  // Prompts as one value when every dataset has the same (as a run given them once records them).
  const same = (k: 'queryPrompt' | 'documentPrompt') =>
    ds.every((d) => d[k] === ds[0][k]) ? (ds[0][k] ?? null) : ds.map((d) => d[k] ?? null)
  return {
    data: ds.map((d) => d.data),
    format: ds.map((d) => d.format),
    column: ds.map((d) => d.column ?? null),
    objective: ds.map((d) => d.objective),
    queryPrompt: same('queryPrompt'),
    documentPrompt: same('documentPrompt'),
  }
}

// The recipe of docs/method.md §6.
const DEFAULTS = {
  objective: DEFAULT_OBJECTIVE,
  format: 'auto' as DataFormat | 'auto',
  temperature: 0.05,
  posScale: 1,
  dclWeight: 0.1,
  dclTemperature: 5,
  batchSize: 64,
  microBatch: 'auto' as number | 'auto',
  maxLen: 32,
  lr: 3e-5,
  epochs: 1,
  warmup: 0,
  lrSchedule: 'linear' as LrSchedule,
  weightDecay: 0,
  gradClip: 1,
  seed: 42,
  device: 'auto' as const,
  precision: 'auto' as Precision | 'auto',
  evalEvery: 125,
  evalExperiments: 10,
  earlyStopping: 0,
  saveEvery: 250,
  vocabSize: 8000,
  pooling: 'cls' as Pooling,
  distributed: 'auto' as boolean | 'auto',
  symmetric: false,
  datasetSampler: 'proportional' as DatasetSampler,
  tensorboard: false,
}

/**
 * The numeric options' allowed values (the command line checks its flags against the same table).
 * The bounds are far beyond any real recipe; past them a run diverges at once or means nothing
 * (lr 1e308, a temperature whose logits overflow, a DCL weight that drowns the instance loss).
 */
export const OPTION_RANGES = {
  temperature: { min: 1e-4, max: 1e3 },
  posScale: { gt: 0, max: 1e3 },
  dclWeight: { min: 0, max: 1e3 },
  dclTemperature: { min: 1e-4, max: 1e3 },
  dropout: { min: 0, lt: 1 },
  batchSize: { int: true, min: 2, why: 'a batch of 1 sentence has no in-batch negatives to contrast with' },
  maxLen: { int: true, min: 3, why: 'room for [CLS], one token and [SEP]' },
  microBatch: { int: true, min: 0, why: '0 runs the whole batch at once' },
  lr: { gt: 0, max: 1 },
  epochs: { int: true, min: 1, max: 1e6 },
  steps: { int: true, min: 0 },
  warmup: { int: true, min: 0 },
  warmupRatio: { min: 0, lt: 1 },
  weightDecay: { min: 0, max: 1 },
  gradClip: { gt: 0, max: 1e6 },
  seed: { int: true, min: 0 },
  evalEvery: { int: true, min: 0 },
  evalExperiments: { int: true, min: 1, max: 1000 },
  earlyStopping: { int: true, min: 0 },
  saveEvery: { int: true, min: 0 },
  vocabSize: { int: true, min: 0 },
  negativesPerExample: { int: true, min: 1, max: 1024 },
} satisfies Record<string, NumberRange>

// Options a resumed run must share with the original (anything else, like saveEvery, may change).
const FIXED_ON_RESUME = [
  'keepLayers',
  'data',
  'format',
  'column',
  'datasetSampler',
  'batchSampler',
  'negativesPerExample',
  'symmetric',
  'queryPrompt',
  'documentPrompt',
  'objective',
  'teacher',
  'temperature',
  'posScale',
  'dclWeight',
  'dclTemperature',
  'matryoshkaDims',
  'matryoshkaWeights',
  'dropout',
  'batchSize',
  'maxLen',
  'lr',
  'epochs',
  'steps',
  'warmup',
  'warmupRatio',
  'lrSchedule',
  'weightDecay',
  'gradClip',
  'seed',
  'pooling',
] as const

/** The options a checkpoint records and a resumed run must repeat (unset ones as null). */
export function fixedOnResume(o: ResolvedTrainOptions): Record<string, unknown> {
  const perDataset = recordedDatasets(o)
  return Object.fromEntries(
    FIXED_ON_RESUME.map((k) => [k, k in perDataset ? perDataset[k as PerDataset] : (o[k as keyof typeof o] ?? null)]),
  )
}

// More datasets than any real mixture; the schedule keeps a dataset's index in 16 bits.
const MAX_DATASETS = 1024

/** Defaults filled in and every option checked; throws a TypeError or RangeError naming the option. */
export function resolveTrainOptions(o: TrainOptions): ResolvedTrainOptions {
  if (!o || typeof o !== 'object') throw new TypeError('train: options must be an object')
  const known = new Set([
    ...Object.keys(DEFAULTS),
    'model',
    'keepLayers',
    'config',
    'tokenizer',
    'data',
    'column',
    'dropout',
    'matryoshkaDims',
    'matryoshkaWeights',
    'batchSampler',
    'negativesPerExample',
    'queryPrompt',
    'documentPrompt',
    'teacher',
    'warmupRatio',
    'steps',
    ...EVAL_SET_OPTIONS,
    'selectBy',
    'out',
    'resume',
    'overwrite',
  ])
  for (const k of Object.keys(o)) if (!known.has(k)) throw new TypeError(`train: unknown option '${k}'`)
  const r = { ...DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as ResolvedTrainOptions
  r.datasets = datasetSpecs(o)
  Object.assign(r, r.datasets[0])
  for (const k of ['column', 'queryPrompt', 'documentPrompt'] as const) if (r.datasets[0][k] === undefined) delete r[k]
  for (const k of EVAL_SET_OPTIONS) {
    const v = (r[k] = o[k] ?? [])
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new TypeError(`train: ${k} must be an array of paths`)
  }
  if (r.selectBy !== undefined) {
    const i = SELECT_BY.indexOf(r.selectBy)
    if (i < 0) throw new TypeError(`train: selectBy must be ${SELECT_BY.join(', ')} (got ${JSON.stringify(r.selectBy)})`)
    if (r.selectBy === 'mean' || r.selectBy === 'mean-type') {
      if (!MEAN_SET_OPTIONS.some((k) => r[k].length))
        throw new TypeError(`train: selectBy ${r.selectBy} needs evaluation sets (${MEAN_SET_OPTIONS.join(', ')})`)
    } else if (!r[EVAL_SET_OPTIONS[i]].length) throw new TypeError(`train: selectBy ${r.selectBy} needs ${EVAL_SET_OPTIONS[i]} (its sets)`)
  }
  r.overwrite = o.overwrite ?? false
  if (typeof r.overwrite !== 'boolean') throw new TypeError(`train: overwrite must be a boolean (got ${String(r.overwrite)})`)
  if (r.overwrite && r.resume) throw new TypeError('train: give either resume (continue a run) or overwrite (start over), not both')
  if (!r.out) throw new TypeError('train: option out (the output directory) is required')
  if (r.model && r.config) throw new TypeError('train: give either model (a directory) or config (a named size), not both')
  if (r.keepLayers !== undefined && !r.model) throw new TypeError("train: keepLayers applies to model (a pretrained model's layers)")
  if (!DATASET_SAMPLERS.includes(r.datasetSampler))
    throw new TypeError(`train: datasetSampler must be ${DATASET_SAMPLERS.join(' or ')} (got ${JSON.stringify(r.datasetSampler)})`)
  for (const [k, range] of Object.entries(OPTION_RANGES) as [keyof typeof OPTION_RANGES, NumberRange][]) {
    const v: unknown = r[k]
    if (v === undefined && (k === 'steps' || k === 'dropout' || k === 'negativesPerExample' || k === 'warmupRatio')) continue
    if (k === 'microBatch' && v === 'auto') continue
    if (!inRange(v, range)) throw new RangeError(`train: ${rangeMessage(k, range, typeof v === 'number' ? String(v) : JSON.stringify(v))}`)
  }
  checkMatryoshkaOptions(r.matryoshkaDims, r.matryoshkaWeights)
  if (o.warmup !== undefined && o.warmupRatio !== undefined)
    throw new TypeError('train: give warmup (steps) or warmupRatio (a fraction of the steps), not both')
  const distilling = r.datasets.some((d) => d.objective === 'distill')
  if (r.teacher !== undefined && (typeof r.teacher !== 'string' || !r.teacher))
    throw new TypeError(`train: teacher must be a model directory (got ${JSON.stringify(r.teacher)})`)
  if (distilling && r.teacher === undefined)
    throw new TypeError('train: objective distill needs a teacher (a model directory whose vectors the model learns)')
  if (!distilling && r.teacher !== undefined) throw new TypeError('train: teacher applies to objective distill')
  if (!distilling && r.evalMse.length)
    throw new TypeError("train: evalMse measures the model against distill's teacher: it applies to objective distill")
  if (distilling && r.matryoshkaDims) throw new TypeError('train: matryoshkaDims applies to the contrastive objectives, not to distill')
  if (r.earlyStopping > 0 && (selectionKind(r) === undefined || r.evalEvery === 0))
    throw new TypeError('train: earlyStopping counts evaluations: give evaluation sets (evalFiles, ...), and an evalEvery above 0')
  if (r.batchSampler !== undefined && !BATCH_SAMPLERS.includes(r.batchSampler))
    throw new TypeError(`train: batchSampler must be ${BATCH_SAMPLERS.join(' or ')} (got ${JSON.stringify(r.batchSampler)})`)
  if (!isPooling(r.pooling)) throw new TypeError(`train: pooling must be ${POOLING_LIST} (got ${r.pooling})`)
  if (!LR_SCHEDULES.includes(r.lrSchedule))
    throw new TypeError(`train: lrSchedule must be ${LR_SCHEDULES.join(', ')} (got ${JSON.stringify(r.lrSchedule)})`)
  for (const k of ['symmetric', 'tensorboard'] as const)
    if (typeof r[k] !== 'boolean') throw new TypeError(`train: ${k} must be a boolean (got ${JSON.stringify(r[k])})`)
  if (r.distributed !== 'auto' && typeof r.distributed !== 'boolean')
    throw new TypeError(`train: distributed must be true, false or 'auto' (got ${JSON.stringify(r.distributed)})`)
  if (!DEVICE_REQUESTS.includes(r.device)) throw new TypeError(`train: device must be auto, cpu or cuda (got ${r.device})`)
  if (!PRECISION_REQUESTS.includes(r.precision))
    throw new TypeError(`train: precision must be auto, fp32 or bf16 (got ${String(r.precision)})`)
  return r
}

/** Every dataset's file, format, column and objective, checked (data: a path, or an array of them). */
function datasetSpecs(o: TrainOptions): DatasetSpec[] {
  const paths = Array.isArray(o.data) ? o.data : [o.data]
  if (paths.length === 0 || paths.some((p) => typeof p !== 'string' || !p))
    throw new TypeError('train: option data (a file of sentences, or an array of data files) is required')
  if (paths.length > MAX_DATASETS) throw new RangeError(`train: at most ${MAX_DATASETS} data files (got ${paths.length})`)
  const formats = perDataset('format', o.format, paths.length)
  const columns = perDataset('column', o.column, paths.length)
  const objectives = perDataset('objective', o.objective, paths.length)
  // Prompts: a string for every dataset, or one each ('' or null: none for that dataset).
  const prompts = (['queryPrompt', 'documentPrompt'] as const).map((k) =>
    perDataset(k, o[k] as string | (string | null)[] | undefined, paths.length).map((v) => {
      if (v !== undefined && v !== null && typeof v !== 'string')
        throw new TypeError(`train: ${k} must be a string (got ${JSON.stringify(v)})`)
      return Array.isArray(o[k]) && !v ? undefined : (v ?? undefined)
    }),
  )
  return paths.map((data, i) => {
    const format = formats[i] ?? DEFAULTS.format
    const objective = objectives[i] ?? DEFAULTS.objective
    const column = columns[i] ?? undefined // null in a recorded run: no column
    if (format !== 'auto' && !DATA_FORMATS.includes(format))
      throw new TypeError(`train: format must be auto, ${DATA_FORMATS.join(', ')} (got ${String(format)})`)
    if (!OBJECTIVES.includes(objective)) throw new TypeError(`train: objective must be one of ${OBJECTIVES.join(', ')} (got ${objective})`)
    if (column !== undefined && typeof column !== 'string')
      throw new TypeError(`train: column must be a string (got ${JSON.stringify(column)})`)
    const [queryPrompt, documentPrompt] = prompts.map((p) => p[i])
    return {
      data,
      format,
      objective,
      ...(column !== undefined ? { column } : {}),
      ...(queryPrompt !== undefined ? { queryPrompt } : {}),
      ...(documentPrompt !== undefined ? { documentPrompt } : {}),
    }
  })
}
