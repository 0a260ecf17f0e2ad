// The batch a training step holds: what the data can fill (--batch-size, at most every sentence), and
// whether that batch's buffers can exist at all, checked before anything is allocated, in the user's
// terms rather than as a failed allocation or a tensor shape error.
import { totalmem } from 'node:os'
import { autoMicroBatchBudget, largestPassWithin } from '../model/memory-budget.js'
import { passFloats } from '../model/pass-floats.js'
import type { BertConfig } from '../model/config.js'
import { gib, MAX_TENSOR_ELEMENTS } from '../model/size-check.js'

/**
 * Sentences per step: the requested size, or all the sentences when there are fewer. A batch never
 * spans two epochs (BatchStream), so a larger request would change nothing but the buffers' size.
 */
export function effectiveBatchSize(requested: number, sentences: number): number {
  return Math.min(requested, sentences)
}

export interface BatchShape {
  config: BertConfig
  /** Sentences per step (effectiveBatchSize). */
  batch: number
  /** --batch-size as given. */
  requested: number
  /** --max-len as given, and the tokens a row can actually hold (the model may allow fewer). */
  maxLen: number
  tokens: number
  /** Encoder rows per sentence (the objective's views). */
  views: number
  /** Rows per encoder pass (micro-batches); default: every row at once. */
  rowsPerPass?: number
  /** The vectors' width (z and dL/dz per row): the hidden size, or the last Dense module's (BertModel.embeddingDim). */
  vectorDim?: number
  /** Matryoshka training: the width of the truncated vectors' scratch (they and their gradient, every row); 0: none. */
  narrowDim?: number
  /** bf16 training: the MLP's pre-activation kept in bfloat16 (BertModel at bf16). */
  interBf16?: boolean
  /** bf16 training on CUDA: the attention's q | k | v, ctx and its gradient too (BertModel.attentionBf16). */
  attentionBf16?: boolean
}

/**
 * Throws a RangeError when a step of this shape cannot hold its buffers: the encoder's activations
 * (one allocation, at most MAX_TENSOR_ELEMENTS floats), dL/dz and Matryoshka's scratch, within `memoryBytes` (default: this
 * machine's memory; `has` says it in words for the message). Rows are sized for the longest sentence --max-len allows.
 */
export function checkBatchFits(s: BatchShape, memoryBytes = totalmem(), has = `this machine has ${gib(memoryBytes)}`): void {
  const rows = s.views * s.batch
  const pass = Math.min(rows, s.rowsPerPass || rows)
  const activations = passFloats(s.config, pass, s.tokens, true, s.interBf16, s.attentionBf16)
  // The vectors and their gradient of every row (twice with micro-batches: gathered, then dL/dz).
  const width = s.vectorDim ?? s.config.hiddenSize
  const bytes = (activations + (pass < rows ? 2 : 1) * rows * width + 2 * rows * (s.narrowDim ?? 0)) * 4
  const given = s.batch < s.requested ? `--batch-size ${s.requested} (${s.batch} sentences: all of the data)` : `--batch-size ${s.batch}`
  const per = pass < rows ? ` in micro-batches of ${pass} rows` : ''
  const needs = `${given} with --max-len ${s.maxLen}${per} needs ~${gib(bytes)} of activations`
  const fix = pass < rows ? 'lower --micro-batch, --batch-size or --max-len' : 'lower --batch-size or --max-len, or set --micro-batch'
  if (bytes > memoryBytes) throw new RangeError(`${needs}; ${has}: ${fix}`)
  if (activations > MAX_TENSOR_ELEMENTS)
    throw new RangeError(`${needs}, more than the ${gib(MAX_TENSOR_ELEMENTS * 4)} simcsepp can allocate at once: ${fix}`)
}

/**
 * Rows per encoder pass for --micro-batch: a number is taken as given (0: all at once); 'auto' runs the
 * whole batch when its activations fit the budget (memory-budget.ts) (larger passes only cost memory: the products
 * are already large), else the largest pass that fits it. Returns the rows and, when it chose to split,
 * why (for the run's messages).
 */
export function chooseMicroBatch(
  request: number | 'auto',
  s: { config: BertConfig; rows: number; tokens: number; interBf16?: boolean; attentionBf16?: boolean },
  budget = autoMicroBatchBudget(),
): { rows: number; note?: string } {
  if (request !== 'auto') return { rows: request >= s.rows ? 0 : request }
  const bytes = (m: number) => passFloats(s.config, m, s.tokens, true, s.interBf16, s.attentionBf16) * 4
  const whole = bytes(s.rows)
  if (whole <= budget) return { rows: 0 }
  const lo = largestPassWithin(bytes, s.rows, budget)
  return {
    rows: lo,
    note: `--micro-batch auto: ${lo} rows per pass (the whole batch's ${s.rows} rows would need ${gib(whole)} of activations, more than the ${gib(budget)} budget; --micro-batch 0 runs it whole)`,
  }
}
