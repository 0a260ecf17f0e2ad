// `bench step --profile`'s plot: milliseconds per step of each op category, one horizontal bar per
// category and configuration (model, batch), as a self-contained SVG next to the table.
import type { OpTime } from './op-profile.js'

export interface ProfileSeries {
  /** "mini B=64 T=32 cpu" */
  label: string
  stepMs: number
  ops: OpTime[]
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e']

export function profilePlotSvg(series: ProfileSeries[], title: string): string {
  const categories = [...new Set(series.flatMap((s) => s.ops.map((o) => o.category)))]
  const bar = 12,
    gap = 6,
    L = 260,
    R = 90,
    T = 40 + 16 * series.length,
    W = 820
  const rowH = bar * series.length + gap
  const Hh = T + categories.length * rowH + 30
  const max = Math.max(1e-9, ...series.flatMap((s) => s.ops.map((o) => o.milliseconds)))
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" font-family="sans-serif" font-size="12">`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ]
  series.forEach((s, k) => {
    const y = 36 + 16 * k
    out.push(`<rect x="${L}" y="${y - 10}" width="12" height="12" fill="${COLORS[k % COLORS.length]}"/>`)
    out.push(`<text x="${L + 18}" y="${y}">${esc(s.label)}: ${s.stepMs.toFixed(1)} ms per step</text>`)
  })
  categories.forEach((c, i) => {
    const y0 = T + i * rowH
    out.push(`<text x="${L - 8}" y="${y0 + (bar * series.length) / 2 + 4}" text-anchor="end">${esc(c)}</text>`)
    series.forEach((s, k) => {
      const ms = s.ops.find((o) => o.category === c)?.milliseconds ?? 0
      const w = (ms / max) * (W - L - R)
      const y = y0 + k * bar
      out.push(`<rect x="${L}" y="${y}" width="${w.toFixed(1)}" height="${bar - 2}" fill="${COLORS[k % COLORS.length]}"/>`)
      out.push(`<text x="${(L + w + 4).toFixed(1)}" y="${y + bar - 3}" font-size="10">${ms.toFixed(1)} ms</text>`)
    })
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
