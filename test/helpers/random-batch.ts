// Random padded batches for the encoder tests on CUDA, and a bit-for-bit comparison of their outputs.

/** A linear congruential generator in [0, 1): the same numbers on every platform. */
export function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32
}

/** B sentences padded to T, with random lengths (the first full) and ids (first token 2, as [CLS]). */
export function randomBatch(B: number, T: number, seed: number, vocab: number) {
  const r = rng(seed)
  const inputIds = new Int32Array(B * T),
    attentionMask = new Int32Array(B * T)
  for (let b = 0; b < B; b++) {
    const len = b === 0 ? T : 1 + Math.floor(r() * T)
    for (let i = 0; i < T; i++) {
      inputIds[b * T + i] = i === 0 ? 2 : i < len ? 5 + Math.floor(r() * (vocab - 5)) : 0
      attentionMask[b * T + i] = i < len ? 1 : 0
    }
  }
  return { inputIds, attentionMask, tokenTypeIds: new Int32Array(B * T), shape: [B, T] }
}

/** How many elements of a and b differ in their bits (Object.is: NaN equals NaN, 0 differs from -0). */
export function differingBits(a: Float32Array, b: Float32Array): number {
  let n = 0
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++
  return n
}
