// The loss sparkline of `simcsepp train`'s summary line: a run's curve in one line of the terminal.
/** A unicode sparkline of at most `width` characters (buckets averaged); non-finite values print as spaces. */
export function sparkline(values: ArrayLike<number>, width = 40): string {
  const n = values.length
  if (n === 0 || width < 1) return ''
  const cols = Math.min(n, Math.floor(width))
  const buckets: number[] = []
  for (let c = 0; c < cols; c++) {
    let s = 0,
      k = 0
    for (let i = Math.floor((c * n) / cols); i < Math.floor(((c + 1) * n) / cols); i++)
      if (Number.isFinite(values[i])) {
        s += values[i]
        k++
      }
    buckets.push(k ? s / k : NaN)
  }
  const finite = buckets.filter(Number.isFinite)
  const lo = Math.min(...finite),
    hi = Math.max(...finite)
  const bars = '▁▂▃▄▅▆▇█'
  return buckets
    .map((v) => (!Number.isFinite(v) ? ' ' : hi === lo ? bars[3] : bars[Math.min(7, Math.floor(((v - lo) / (hi - lo)) * 8))]))
    .join('')
}
