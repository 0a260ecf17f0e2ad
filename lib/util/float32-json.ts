// JSON for float32 vectors at float32 precision: each value as the shortest decimal that reads back as
// the same float32 (at most 9 significant digits), not the 17-digit double JSON.stringify would print.

/** The shortest decimal string whose float32 rounding is `x` (x a float32 value). */
export function float32String(x: number): string {
  if (!Number.isFinite(x) || x === 0 || Math.fround(x) !== x) return String(x)
  // Round-tripping is monotonic in the digit count (the p-digit decimal is also a (p+1)-digit one), so
  // binary-search the count in 1..9 (9 always round-trips a float32).
  let lo = 1,
    hi = 9
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (Math.fround(Number(x.toPrecision(mid))) === x) hi = mid
    else lo = mid + 1
  }
  return String(Number(x.toPrecision(lo)))
}

/** A JSON array of the vector's values at float32 precision. */
export function float32Json(v: ArrayLike<number>): string {
  const parts = new Array<string>(v.length)
  for (let i = 0; i < v.length; i++) parts[i] = float32String(Math.fround(v[i]))
  return `[${parts.join(',')}]`
}
