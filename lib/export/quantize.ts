// Symmetric int8 quantization of weight matrices, one scale per row: q = round(w / s), s = max|row| / levels,
// so the row's largest weight maps to ±levels and zero stays exactly zero (no zero point).
//
// Linear weights get 63 levels (7 bits), as onnxruntime's quantize_dynamic with reduce_range: the
// exported graph multiplies them by uint8 activations, and x86 CPUs without VNNI do that with vpmaddubsw,
// which adds two u8 x s8 products into an int16 and saturates: 2 x 255 x 127 overflows, 2 x 255 x 63 does
// not. Embedding tables are gathered, never multiplied, so they keep all 127 levels.

/** Levels either side of zero for a weight multiplied by uint8 activations (see above). */
export const MATMUL_LEVELS = 63
/** Levels either side of zero for a gathered table. */
export const TABLE_LEVELS = 127

/** s[r] = max |a[r, :]| / levels for a row-major [rows, cols] matrix (0 for an all-zero row). */
export function rowScales(a: Float32Array, rows: number, cols: number, levels: number): Float32Array {
  const s = new Float32Array(rows)
  for (let r = 0; r < rows; r++) {
    let m = 0
    for (let i = r * cols, end = i + cols; i < end; i++) m = Math.max(m, Math.abs(a[i]))
    s[r] = m / levels
  }
  return s
}

/**
 * Quantizes the row-major [rows, cols] `a` with the row scales `s` into `out`: row-major as `a`, or
 * transposed to [cols, rows] (MatMul's [in, out] from a checkpoint's [out, in]). Rounds half to even,
 * as numpy and onnxruntime do; values are clamped to ±levels (rounding cannot exceed them, but a scale
 * rounded to fp32 could by one ulp).
 */
export function quantizeRowsInto(
  a: Float32Array,
  rows: number,
  cols: number,
  s: Float32Array,
  levels: number,
  out: Int8Array,
  transpose: boolean,
): void {
  for (let r = 0; r < rows; r++) {
    const inv = s[r] > 0 ? 1 / s[r] : 0
    for (let c = 0; c < cols; c++) {
      const q = Math.min(levels, Math.max(-levels, roundHalfEven(a[r * cols + c] * inv)))
      out[transpose ? c * rows + r : r * cols + c] = q
    }
  }
}

function roundHalfEven(v: number): number {
  const r = Math.round(v)
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r
}
