// `bench batch`'s plot: peak memory against batch size (log2 axis), one line per setting (whole batch,
// micro-batches), as a self-contained SVG next to the table.

export interface MemorySeries {
  label: string
  /** [batch size, bytes], in increasing batch size. */
  points: [number, number][]
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd']

export function memoryPlotSvg(series: MemorySeries[], title: string): string {
  const W = 640,
    Hh = 360,
    L = 70,
    R = 20,
    T = 40,
    B = 50
  const all = series.flatMap((s) => s.points)
  if (all.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}"></svg>\n`
  const xs = all.map(([b]) => Math.log2(b)),
    ys = all.map(([, v]) => v / 2 ** 20)
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1]
  const y1 = Math.max(...ys) * 1.1 || 1
  const px = (b: number) => L + ((Math.log2(b) - x0) / Math.max(x1 - x0, 1)) * (W - L - R)
  const py = (v: number) => T + (1 - v / 2 ** 20 / y1) * (Hh - T - B)
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" font-family="sans-serif" font-size="12">`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<line x1="${L}" y1="${Hh - B}" x2="${W - R}" y2="${Hh - B}" stroke="#333"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${Hh - B}" stroke="#333"/>`,
    `<text x="${W / 2}" y="${Hh - 12}" text-anchor="middle">batch size (sentences, log scale)</text>`,
    `<text x="16" y="${(Hh - B + T) / 2}" transform="rotate(-90 16 ${(Hh - B + T) / 2})" text-anchor="middle">peak memory (MiB)</text>`,
  ]
  for (const b of [...new Set(all.map(([b]) => b))])
    out.push(`<text x="${px(b).toFixed(1)}" y="${Hh - B + 16}" text-anchor="middle">${b}</text>`)
  for (let k = 0; k <= 4; k++) {
    const v = (y1 * k) / 4
    const y = T + (1 - k / 4) * (Hh - T - B)
    out.push(`<text x="${L - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${v.toFixed(0)}</text>`)
    out.push(`<line x1="${L}" y1="${y.toFixed(1)}" x2="${W - R}" y2="${y.toFixed(1)}" stroke="#eee"/>`)
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    const d = s.points.map(([b, v], j) => `${j ? 'L' : 'M'}${px(b).toFixed(1)},${py(v).toFixed(1)}`).join(' ')
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`)
    for (const [b, v] of s.points) out.push(`<circle cx="${px(b).toFixed(1)}" cy="${py(v).toFixed(1)}" r="3" fill="${color}"/>`)
    out.push(`<text x="${L + 10}" y="${T + 14 + 16 * i}" fill="${color}">${esc(s.label)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
