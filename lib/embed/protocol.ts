// Messages between a SentenceEncoder (main side) and its worker thread (worker.ts).
import type { Pooling } from '../model/bert.js'
import type { DeviceRequest } from '../device.js'
import type { EncoderPrecision, EncoderPrecisionRequest } from '../model/precision.js'
import type { DenseConfig } from './dense.js'

export interface InitData {
  dir: string
  device: DeviceRequest
  precision: EncoderPrecisionRequest
  /** sentence-transformers Dense modules applied after the pooling, in order. */
  dense: DenseConfig[]
}

export interface RunOptions {
  batchSize: number
  maxLength: number
  /** Lowercase each sentence before tokenizing (sentence_bert_config.json's do_lower_case). */
  lowercase: boolean
  pooling: Pooling
  normalize: boolean
  sortByLength: boolean
  /** Keep each vector's first truncateDim values (then normalize); null: all of them. */
  truncateDim: number | null
  /**
   * The prompt the sentences begin with, when the pooling leaves its tokens out (the Pooling config's include_prompt
   * false): mean pooling then skips each sentence's first tokens, [CLS] and the prompt's, as sentence-transformers
   * does (its prompt_length: the prompt's tokens with [CLS], without [SEP]).
   */
  excludePrompt?: string
}

/** Main -> worker. Sentences of one request may come in several chunks; `last` starts the work. */
export type ToWorker = { type: 'encode'; id: number; sentences: string[]; last: boolean; options: RunOptions } | { type: 'close' }

/** Worker -> main. */
export type FromWorker =
  | { type: 'ready'; dimension: number; device: 'cpu' | 'cuda'; precision: EncoderPrecision; note?: string; precisionNote?: string }
  | { type: 'load-error'; message: string }
  | { type: 'batch'; id: number; indices: Int32Array; vectors: Float32Array }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; message: string }
  | { type: 'closed' }
