// The precision policy shared by training and the SentenceEncoder: 'auto' means bf16 products on CUDA
// (tensor cores; everything but the products stays fp32) and fp32 on the CPU, where bf16 would only add
// rounding (the CPU computes it by rounding the operands, to check the CUDA bf16 path).
import type { Precision } from '../native.js'
import type { Device } from '../tensor.js'

export type PrecisionRequest = Precision | 'auto'
export const PRECISION_REQUESTS: readonly PrecisionRequest[] = ['auto', 'fp32', 'bf16']

/**
 * SentenceEncoder's precisions: the model's, or 'int8' (CPU inference only: the encoder layers' products in int8,
 * BertModel.quantizeInt8).
 */
export type EncoderPrecision = Precision | 'int8'
export type EncoderPrecisionRequest = PrecisionRequest | 'int8'
export const ENCODER_PRECISION_REQUESTS: readonly EncoderPrecisionRequest[] = [...PRECISION_REQUESTS, 'int8']

/** 'auto' resolved for `device`. */
export function effectivePrecision(p: PrecisionRequest, device: Device): Precision {
  return p === 'auto' ? (device === 'cuda' ? 'bf16' : 'fp32') : p
}
