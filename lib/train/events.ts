// What a training run reports: one StepInfo per optimizer step and one EvalInfo per evaluation (the
// lines of train.jsonl and the arguments of the hooks), and what train() returns.
import type { ClassificationResult } from '../eval/classification.js'
import type { ClusteringResult } from '../eval/clustering.js'
import type { PairClassificationResult } from '../eval/pair-classification.js'
import type { RerankingResult } from '../eval/reranking.js'
import type { SummarizationResult } from '../eval/summarization.js'
import type { TranslationResult } from '../eval/translation.js'
import type { MseResult } from '../eval/mse.js'

export interface StepInfo {
  type: 'step'
  step: number
  totalSteps: number
  epoch: number
  /** A run of several datasets: the one this step's batch came from (its index in the run's data). */
  dataset?: number
  /** Sentences this step trained on (at most --batch-size, at most the data). */
  batchSize: number
  /** Encoder passes this process's rows were split into (1 without micro-batches). */
  microBatches: number
  /** Ranks of a data-parallel run (absent: one process). */
  ranks?: number
  /**
   * Of the step's seconds, those spent in collectives (all-gather of z, all-reduce of the gradients).
   * Absent for a step run as a CUDA graph: its collectives run inside the replay.
   */
  communicationSeconds?: number
  /** Tensor bytes this rank handed to collectives in the step: V·N·H·4 gathered plus 4·P reduced. */
  communicatedBytes?: number
  /** Bytes of activation memory the encoder holds (the largest pass so far). */
  activationBytes: number
  /** On CUDA with step graphs: how this step ran ('eager' while its padded shape is new, then one graph). */
  cudaGraph?: 'eager' | 'captured' | 'replayed'
  loss: number
  /** The loss's terms, unweighted (SimCSE++: offDropout and dcl); with Matryoshka dimensions, each summed over them with their weights. */
  parts: Record<string, number>
  /** With Matryoshka dimensions (matryoshkaDims): each one's loss, unweighted, keyed by the dimension. */
  dimLosses?: Record<string, number>
  lr: number
  gradNorm: number
  sentencesPerSecond: number
  /** Wang & Isola's alignment (views z1, z2) and uniformity (the last view), over the batch's first 256 sentences. */
  alignment: number
  uniformity: number
  elapsedSeconds: number
}

/** A retrieval set's numbers at an evaluation (fractions in [0, 1], as evaluateRetrieval gives them). */
export interface RetrievalEval {
  /** The BEIR folder, and the split of its qrels that was scored. */
  dataset: string
  split: string
  queries: number
  documents: number
  ndcgAt10: number
  mrrAt10: number
  recallAt100: number
}

export interface EvalInfo {
  type: 'eval'
  step: number
  /** Per STS file: Spearman and Pearson ×100 (Pearson is absent in logs written before it was reported); [] without STS files. */
  results: { file: string; pairs: number; spearman: number; pearson?: number }[]
  /** The mean Spearman of the STS files (absent without STS files). */
  average?: number
  /** STS of the first eval file: the model-selection metric (absent without STS files). */
  spearman?: number
  /** Matryoshka training: the first file's Spearman ×100 on the vectors cut to each trained size below the hidden size. */
  dimSpearman?: Record<string, number>
  /** Retrieval sets (BEIR folders, evalRetrieval); without STS files the first one's nDCG@10 selects the model. */
  retrieval?: RetrievalEval[]
  /** MTEB's other task kinds (evalClassification, ...): each set's result, with the split scored (absent: a file). */
  classification?: (ClassificationResult & TaskSplit)[]
  clustering?: (ClusteringResult & TaskSplit)[]
  pairClassification?: (PairClassificationResult & TaskSplit)[]
  reranking?: (RerankingResult & TaskSplit)[]
  summarization?: (SummarizationResult & TaskSplit)[]
  /**
   * Parallel sentences (evalTranslation): each set's matching accuracies and bitext mining F1, with the split scored
   * (absent: a file); a multilingual dataset's subset named by the dataset's folder (`file`) and `subset`.
   */
  translation?: (TranslationResult & TaskSplit)[]
  /** Distillation's sets (evalMse): each file's mean squared difference from the teacher's vectors, with the split scored. */
  mse?: (MseResult & { split?: string })[]
  /**
   * What selects the model (absent in logs written before it was recorded): its set (the file's or folder's name, with
   * the split scored), its measure, and the score here (as Best holds it).
   */
  selection?: { set: string; metric: SelectionMetric; score: number }
  best: boolean
}

/**
 * The split of a task's folder that an evaluation scored (absent where the set is one file), and where the folder is
 * a multilingual dataset's subset, the subset's name (`dataset` then names the dataset's folder).
 */
export interface TaskSplit {
  split?: string
  subset?: string
}

/**
 * The measures a model can be selected by: the first STS file's Spearman ×100, a retrieval set's nDCG@10, a
 * classification set's accuracy, a clustering set's V-measure, a pair classification set's AP (the best of its four
 * comparisons), a reranking set's MAP, a summarization set's cosine Spearman, a translation file's bitext mining F1
 * (fractions, as the evaluations give them), a distillation set's negative MSE (-mse: shown ×100, as
 * sentence-transformers' negative_mse).
 */
export const SELECTION_METRICS = [
  'spearman',
  'ndcgAt10',
  'accuracy',
  'vMeasure',
  'ap',
  'map',
  'cosineSpearman',
  'f1',
  'negativeMse',
  'mean',
  'meanByType',
] as const
export type SelectionMetric = (typeof SELECTION_METRICS)[number]

/** Each selection measure's name in tables, plots and messages. */
export const SELECTION_METRIC_NAMES: Record<SelectionMetric, string> = {
  spearman: 'Spearman',
  ndcgAt10: 'nDCG@10',
  accuracy: 'accuracy',
  vMeasure: 'V-measure',
  ap: 'AP',
  map: 'MAP',
  cosineSpearman: 'cosine Spearman',
  f1: 'bitext mining F1',
  negativeMse: 'negative MSE',
  mean: 'mean main score',
  meanByType: 'mean main score by task type',
}

export type LogEntry = StepInfo | EvalInfo

/**
 * The best evaluation so far: the step whose model is in the output directory, and its selection score keyed by its
 * measure: the first STS file's Spearman ×100 ({ step, spearman }), or the first retrieval set's nDCG@10
 * ({ step, ndcgAt10 }), or the first set's main score of the task kind that selects (selectBy), or with selectBy 'mean'
 * the mean of every set's main score ({ step, mean }, a fraction), or with 'mean-type' the mean of each task type's
 * mean ({ step, meanByType }).
 */
export type Best = ({ step: number } & { [M in SelectionMetric]: { [K in M]: number } }[SelectionMetric]) | null

export interface TrainHooks {
  onStep?(info: StepInfo): void
  onEval?(info: EvalInfo): void
  /** Human-readable notes (resuming, saving, device fallbacks). */
  onMessage?(text: string): void
  /** Stops the run after the current step, writing a checkpoint first (the CLI wires it to Ctrl-C). */
  signal?: AbortSignal
}

export interface TrainResult {
  out: string
  steps: number
  history: LogEntry[]
  best: Best
  /** The run was stopped by the signal; continue it with resume: out. */
  interrupted: boolean
  /** This process's rank in a data-parallel run (0, or absent, for the rank that wrote the output). */
  rank?: number
}
