// MPNet's relative-position buckets, as native/common/relative_bucket.h computes them (whose header says why the
// integer form is transformers' float32 one): the ONNX export builds its bucket lookup from this.

/** The bucket (0..31) of relative position rel = key - query. */
export function relativeBucket(rel: number): number {
  const n = -rel
  const base = n < 0 ? 16 : 0
  const a = Math.abs(n)
  if (a < 8) return base + a
  // floor(log2(a^2)) from the bit length (a^2 < 2^32 for any position a model has)
  return base + Math.min(15, 2 + (31 - Math.clz32(a * a)))
}
