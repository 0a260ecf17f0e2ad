// Deterministic float32 test data spread over several binades (LCG-driven), so that a conversion that rounds
// or a chunk put in the wrong place shows in the bits.
export function spreadValues(n: number, seed: number): Float32Array {
  const out = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = (s / 2 ** 32 - 0.5) * 2 ** ((s >>> 27) - 8)
  }
  return out
}
