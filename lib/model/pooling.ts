// The sentence poolings implemented, by sentence-transformers' names (its Pooling module's pooling_mode_* keys):
// the [CLS] token's vector, the mean over the real tokens, each dimension's largest value over them (max_tokens:
// the older sentence-transformers NLI models' pooling), and the sum over them divided by the square root of their
// number (mean_sqrt_len_tokens). One native op pair each (native/ops/encoder.h), CPU and CUDA.
import * as ops from '../ops.js'
import type { Tensor } from '../tensor.js'

export const POOLINGS = ['cls', 'mean', 'max', 'mean_sqrt_len'] as const
export type Pooling = (typeof POOLINGS)[number]

/** The poolings as a usage string lists them ("cls, mean, max or mean_sqrt_len"). */
export const POOLING_LIST = `${POOLINGS.slice(0, -1).join(', ')} or ${POOLINGS[POOLINGS.length - 1]}`

export const isPooling = (v: unknown): v is Pooling => typeof v === 'string' && (POOLINGS as readonly string[]).includes(v)

/** What each pooling gives, as the model card says it. */
export const POOLING_DESCRIPTIONS: Record<Pooling, string> = {
  cls: 'the [CLS] vector',
  mean: 'the mean over tokens',
  max: "each dimension's largest value over tokens",
  mean_sqrt_len: 'the sum over tokens divided by the square root of their number',
}

/** sentence-transformers' Pooling config key of each pooling. */
export const POOLING_CONFIG_KEYS: Record<Pooling, string> = {
  cls: 'pooling_mode_cls_token',
  mean: 'pooling_mode_mean_tokens',
  max: 'pooling_mode_max_tokens',
  mean_sqrt_len: 'pooling_mode_mean_sqrt_len_tokens',
}

/** out [B, H] = the pooling of hidden [B, T, H] over the tokens where mask (B·T) is not 0 ([CLS]: token 0). */
export function poolForward(pooling: Pooling, out: Tensor, hidden: Tensor, mask: Int32Array): void {
  if (pooling === 'cls') ops.poolClsForward(out, hidden)
  else if (pooling === 'max') ops.poolMaxForward(out, hidden, mask)
  else if (pooling === 'mean' || pooling === 'mean_sqrt_len') ops.poolMeanForward(out, hidden, mask, pooling === 'mean_sqrt_len')
  else throw new TypeError(`pooling must be ${POOLING_LIST}, got ${String(pooling)}`)
}

/** dhidden [B, T, H] = the gradient of poolForward's out (dout) at hidden (overwritten; max reads hidden again). */
export function poolBackward(pooling: Pooling, dhidden: Tensor, dout: Tensor, hidden: Tensor, mask: Int32Array): void {
  if (pooling === 'cls') ops.poolClsBackward(dhidden, dout, false)
  else if (pooling === 'max') ops.poolMaxBackward(dhidden, dout, hidden, mask, false)
  else ops.poolMeanBackward(dhidden, dout, mask, false, pooling === 'mean_sqrt_len')
}
