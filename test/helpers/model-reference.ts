// What the float64 references of the model types written from transformers' modeling files (test/distilbert.test.ts,
// test/mpnet.test.ts) share: reading tensors by checkpoint name, dropout multipliers by site, the native masks.
import type { BertModel } from '../../lib/model/bert.js'
import type { BertConfig, ModelType } from '../../lib/model/config.js'
import { checkpointName } from '../../lib/model/names.js'
import * as ops from '../../lib/ops.js'
import { Tensor } from '../../lib/tensor.js'
import { layerNormRef, linearRef, poolRef } from './bert-reference.js'
import type { Pooling } from '../../lib/model/pooling.js'

/** factor(site, length) -> dropout multipliers for that site, or null for none (encoder-reference.ts's). */
export type SiteFactors = (site: number, length: number) => Float64Array | null

/** The closures a reference builds its layers from, over tensors S by name and R rows of H. */
export function refTools(S: ReadonlyMap<string, Float64Array>, factor: SiteFactors, R: number, H: number, eps: number) {
  const s = (n: string) => {
    const v = S.get(n)
    if (!v) throw new Error(`no tensor ${n}`)
    return v
  }
  return {
    s,
    drop: (a: Float64Array, site: number) => {
      const f = factor(site, a.length)
      return f ? a.map((v, i) => v * f[i]) : a
    },
    add: (a: Float64Array, b: Float64Array) => a.map((v, i) => v + b[i]),
    ln: (a: Float64Array, name: string) => layerNormRef(a, s(`${name}.weight`), s(`${name}.bias`), R, H, eps).out,
  }
}

/** The model's parameters in float64 under the names its model type's checkpoints use (the MLP head's too). */
export function tensorsByCheckpointName(model: BertModel, modelType: ModelType): Map<string, Float64Array> {
  const flat = model.params.toFloat32Array()
  return new Map(
    model.layout.entries.map((e) => [checkpointName(e.name, modelType), Float64Array.from(flat.subarray(e.offset, e.offset + e.size))]),
  )
}

/**
 * The native masks of each dropout site of a training step (seed, step) over B sentences, read back by dropping
 * out a tensor of ones: site 0 and 2 + 3l, 3 + 3l at hidden_dropout_prob, 1 + 3l (attention) at its own.
 */
export function nativeSiteFactors(c: BertConfig, B: number, seed: number, step: number): SiteFactors {
  const sites = 1 + 3 * c.numHiddenLayers
  return (site, length) => {
    const p = site > 0 && (site - 1) % 3 === 0 ? c.attentionProbsDropoutProb : c.hiddenDropoutProb
    const ones = Tensor.from(new Float32Array(length).fill(1), [B, length / B])
    ops.dropout(ones, ones, { p, seed, offset: BigInt(step) * BigInt(sites) + BigInt(site) })
    return Float64Array.from(ones.toFloat32Array())
  }
}

/** A reference's batch: token ids and mask, [B, T]. */
export interface RefInput {
  ids: Int32Array
  mask: Int32Array
  B: number
  T: number
}

/** The training head z = tanh(W·pooled + b), when a reference is asked for it. */
export interface RefHead {
  weight: Float64Array
  bias: Float64Array
}

/** The last hidden states h [B·T, H] as a reference returns them: as they are ('none'), pooled, or through the head. */
export function refOutput(h: Float64Array, x: RefInput, H: number, pooling: Pooling | 'none', mlp?: RefHead): Float64Array {
  if (pooling === 'none') return h
  const pooled = poolRef(pooling, h, x.mask, x.B, x.T, H)
  return mlp ? linearRef(pooled, mlp.weight, mlp.bias, x.B, H, H).map(Math.tanh) : pooled
}

/**
 * transformers' MPNetEncoder.relative_position_bucket(rel, 32, 128) for relative position rel = key - query, its
 * logarithm in float32 as torch computes it (Math.fround of each step): the reference our integer buckets are held to.
 */
export function hfRelativeBucket(rel: number): number {
  const n = -rel
  const a = Math.abs(n),
    f = Math.fround
  const base = n < 0 ? 16 : 0
  if (a < 8) return base + a
  return base + Math.min(15, 8 + Math.trunc(f(f(f(Math.log(f(a / 8))) / f(Math.log(128 / 8))) * 8)))
}
