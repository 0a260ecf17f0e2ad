// bfloat16 rounding in JavaScript, as the ops round (native/common/bf16.h: nearest, ties to even; Inf and NaN kept).
// Plain JavaScript, so gpu-check's helpers (test/helpers/attention-bf16.mjs) use it on a machine without TypeScript;
// the tests import it through helpers/bf16.ts.

/** x rounded to the nearest bfloat16 (its float32 first). */
export function roundBf16(/** @type {number} */ x) {
  const f = new Float32Array([x])
  const u = new Uint32Array(f.buffer)
  if ((u[0] & 0x7f800000) !== 0x7f800000) u[0] = ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) & 0xffff0000) >>> 0
  return f[0]
}

/** A copy of a with every element rounded to bfloat16. */
export function roundBf16Array(/** @type {Float32Array} */ a) {
  return Float32Array.from(a, roundBf16)
}
