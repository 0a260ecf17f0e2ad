// Random initialisation as transformers' BertPreTrainedModel._init_weights: Linear and Embedding
// weights ~ N(0, initializer_range), biases 0, LayerNorm weight 1 and bias 0, and the padding row of
// the word embeddings zeroed. Seeded, so the same seed gives the same model on every machine.
import type { BertConfig } from './config.js'
import type { ParamLayout, ParamEntry } from './layout.js'
import { advanceXoshiro, xoshiroOutput, xoshiroStep } from './xoshiro128.js'

/**
 * Deterministic N(0,1) draws: splitmix64-seeded xoshiro128** and Box-Muller in float64, starting at draw
 * `skip` of the stream (each pair of draws takes two 32-bit outputs, so the generator jumps by 2 floor(skip / 2)).
 */
export function gaussianStream(seed: number, skip = 0): () => number {
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
  advanceXoshiro(st, 2 * Math.floor(skip / 2))
  const u32 = () => {
    const result = xoshiroOutput(st)
    xoshiroStep(st)
    return result
  }
  let spare: number | null = null
  const draw = () => {
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
  if (skip % 2 === 1) draw() // an odd start is the second half of a pair
  return draw
}

/** Where the random entries' values go: [offset, size] in the flat buffer, in the stream's order. */
export type DrawSegments = [number, number][]

/** The random (Gaussian) entries of `layout`, in order. */
export function drawSegments(layout: ParamLayout): DrawSegments {
  return layout.entries.filter(isRandom).map((e) => [e.offset, e.size])
}

/**
 * Writes draws `from` .. `to` - 1 of the stream, times `scale`, into their places in `flat` (draw d is the d-th
 * value of the random entries laid end to end). Any split of the draws into ranges fills the same values, so
 * ranges can be drawn by different threads (init-parallel.ts).
 */
export function fillDraws(flat: Float32Array, segments: DrawSegments, scale: number, seed: number, from: number, to: number): void {
  const randn = gaussianStream(seed, from)
  let start = 0 // the first draw of the current segment
  for (const [offset, size] of segments) {
    const lo = Math.max(from, start),
      hi = Math.min(to, start + size)
    for (let d = lo; d < hi; d++) flat[offset + d - start] = randn() * scale
    start += size
    if (start >= to) return
  }
}

// The word-embedding table of BERT's names and of ModernBERT's.
const WORD_EMBEDDINGS = ['embeddings.word_embeddings.weight', 'embeddings.tok_embeddings.weight']

/** The entries that are not drawn: LayerNorm weights 1, the rest 0, and the padding row of the word embeddings 0. */
export function fillConstants(flat: Float32Array, layout: ParamLayout, config: BertConfig): void {
  for (const e of layout.entries) fillEntryConstants(flat.subarray(e.offset, e.offset + e.size), e, config)
}

/** fillConstants for one entry, whose elements `dst` holds. */
function fillEntryConstants(dst: Float32Array, e: ParamEntry, config: BertConfig): void {
  if (!isRandom(e)) dst.fill(e.kind === 'layernorm' && e.name.endsWith('.weight') ? 1 : 0)
  if (e.name === WORD_EMBEDDINGS[config.modelType === 'modernbert' ? 1 : 0] && config.padTokenId < config.vocabSize) {
    const H = config.hiddenSize
    dst.fill(0, config.padTokenId * H, (config.padTokenId + 1) * H)
  }
}

/** Fills `flat` (laid out by `layout`) with a freshly initialised model. */
export function initialiseParameters(flat: Float32Array, layout: ParamLayout, config: BertConfig, seed: number): void {
  const segments = drawSegments(layout)
  fillDraws(flat, segments, config.initializerRange, seed, 0, totalDraws(segments))
  fillConstants(flat, layout, config) // after the draws: the padding row is zeroed over them
}

/** Draws of all the segments together. */
export function totalDraws(segments: DrawSegments): number {
  return segments.reduce((n, [, size]) => n + size, 0)
}

/**
 * The values initialiseParameters gives entry `name` with this seed, computed alone: its Gaussian draws start
 * where the stream reaches it (the sizes of the random entries before it). BertModel.load fills what a
 * checkpoint lacks with them, so a loaded model gets the same head and pooler as before it skipped the rest.
 */
export function initialEntryValues(layout: ParamLayout, config: BertConfig, seed: number, name: string): Float32Array {
  const e = layout.byName.get(name)
  if (!e) throw new Error(`initialEntryValues: no parameter named ${name}`)
  const out = new Float32Array(e.size)
  if (isRandom(e)) {
    let drawsBefore = 0
    for (const other of layout.entries) {
      if (other === e) break
      if (isRandom(other)) drawsBefore += other.size
    }
    const randn = gaussianStream(seed, drawsBefore)
    for (let i = 0; i < out.length; i++) out[i] = randn() * config.initializerRange
  }
  fillEntryConstants(out, e, config)
  return out
}

function isRandom(e: ParamEntry): boolean {
  return e.kind === 'weight' || e.kind === 'embedding'
}
