// bfloat16 rounding in JavaScript, as the ops round (native/common/bf16.h: nearest, ties to even; Inf and NaN kept).

/** x rounded to the nearest bfloat16 (its float32 first). */
export function roundBf16(x: number): number {
  const f = new Float32Array([x])
  const u = new Uint32Array(f.buffer)
  if ((u[0] & 0x7f800000) !== 0x7f800000) u[0] = ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) & 0xffff0000) >>> 0
  return f[0]
}

/** A copy of a with every element rounded to bfloat16. */
export function roundBf16Array(a: Float32Array): Float32Array {
  return Float32Array.from(a, roundBf16)
}
