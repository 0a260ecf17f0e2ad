// Random initialisation as transformers' BertPreTrainedModel._init_weights: Linear and Embedding
// weights ~ N(0, initializer_range), biases 0, LayerNorm weight 1 and bias 0, and the padding row of
// the word embeddings zeroed. Seeded, so the same seed gives the same model on every machine.
import type { BertConfig } from './config.js'
import type { ParamLayout } from './layout.js'

/** Deterministic N(0,1) draws: splitmix64-seeded xoshiro128** and Box-Muller in float64. */
export function gaussianStream(seed: number): () => number {
  let s = BigInt.asUintN(64, BigInt(seed))
  const next64 = () => {
    s = BigInt.asUintN(64, s + 0x9e3779b97f4a7c15n)
    let z = s
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n)
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn)
    return z ^ (z >> 31n)
  }
  const st = new Uint32Array(4)
  for (let i = 0; i < 4; i += 2) {
    const v = next64()
    st[i] = Number(v & 0xffffffffn)
    st[i + 1] = Number(v >> 32n)
  }
  const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0
  const u32 = () => {
    const result = Math.imul(rotl(Math.imul(st[1], 5) >>> 0, 7), 9) >>> 0
    const t = (st[1] << 9) >>> 0
    st[2] ^= st[0]
    st[3] ^= st[1]
    st[1] ^= st[2]
    st[0] ^= st[3]
    st[2] ^= t
    st[3] = rotl(st[3], 11)
    return result
  }
  let spare: number | null = null
  return () => {
    if (spare !== null) {
      const v = spare
      spare = null
      return v
    }
    const u = (u32() + 1) / 4294967297 // (0, 1)
    const v = u32() / 4294967296
    const r = Math.sqrt(-2 * Math.log(u))
    spare = r * Math.sin(2 * Math.PI * v)
    return r * Math.cos(2 * Math.PI * v)
  }
}

/** Fills `flat` (laid out by `layout`) with a freshly initialised model. */
export function initialiseParameters(flat: Float32Array, layout: ParamLayout, config: BertConfig, seed: number): void {
  const randn = gaussianStream(seed)
  for (const e of layout.entries) {
    const dst = flat.subarray(e.offset, e.offset + e.size)
    if (e.kind === 'weight' || e.kind === 'embedding') {
      for (let i = 0; i < dst.length; i++) dst[i] = randn() * config.initializerRange
    } else if (e.kind === 'layernorm' && e.name.endsWith('.weight')) {
      dst.fill(1)
    } else {
      dst.fill(0)
    }
    if (e.name === 'embeddings.word_embeddings.weight' && config.padTokenId < config.vocabSize) {
      const H = config.hiddenSize
      dst.fill(0, config.padTokenId * H, (config.padTokenId + 1) * H)
    }
  }
}
