// The batch a training step holds: what the data can fill (--batch-size, at most every sentence), and
// whether that batch's buffers can exist at all, checked before anything is allocated, in the user's
// terms rather than as a failed allocation or a tensor shape error.
import { totalmem } from 'node:os'
import { floatsFor } from '../model/activations.js'
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
}

/**
 * Throws a RangeError when a step of this shape cannot hold its buffers: the encoder's activations
 * (one allocation, at most MAX_TENSOR_ELEMENTS floats) and dL/dz, within `memoryBytes` (default: this
 * machine's memory). Rows are sized for the longest sentence --max-len allows.
 */
export function checkBatchFits(s: BatchShape, memoryBytes = totalmem()): void {
  const rows = s.views * s.batch
  const activations = floatsFor(s.config, rows, s.tokens, true)
  const bytes = (activations + rows * s.config.hiddenSize) * 4
  const given = s.batch < s.requested ? `--batch-size ${s.requested} (${s.batch} sentences: all of the data)` : `--batch-size ${s.batch}`
  const needs = `${given} with --max-len ${s.maxLen} needs ~${gib(bytes)} of activations`
  const fix = 'lower --batch-size or --max-len'
  if (bytes > memoryBytes) throw new RangeError(`${needs}; this machine has ${gib(memoryBytes)}: ${fix}`)
  if (activations > MAX_TENSOR_ELEMENTS)
    throw new RangeError(`${needs}, more than the ${gib(MAX_TENSOR_ELEMENTS * 4)} simcsepp can allocate at once: ${fix}`)
}
