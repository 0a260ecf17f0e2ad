// Human-readable byte counts, for benchmark notes and tables.
/** 512 B, 1.3 MiB, 112 MiB; 'n/a' when not finite. */
export function formatBytes(b: number): string {
  if (!Number.isFinite(b)) return 'n/a'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024
    i++
  }
  return `${b < 10 && i > 0 ? b.toFixed(1) : Math.round(b)} ${units[i]}`
}
