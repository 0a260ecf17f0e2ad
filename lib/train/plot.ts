// Training curves without dependencies: a self-contained SVG (loss and STS-B dev Spearman against step)
// for the run directory (loss_curve.svg). The terminal's sparkline is the CLI's (lib/cli/sparkline.ts).

export interface HistoryPoint {
  step: number
  loss: number
  /** Named loss terms (e.g. SimCSE++'s off-dropout and DCL parts), drawn smoothed and dashed. */
  lossParts?: Record<string, number>
  /** STS-B dev Spearman ×100 when evaluated at this step. */
  sts?: number
}

export interface PlotOptions {
  title?: string
  /** Total width in px (default 860). */
  width?: number
  /** EMA smoothing factor in [0, 1) for the loss (default: chosen from the number of points). */
  smoothing?: number
  /** Label of the STS panel (default "STS-B dev Spearman"). */
  stsLabel?: string
  /** Its axis title (default "Spearman ×100"): the panel may hold another score, e.g. nDCG@10. */
  stsAxis?: string
  /** Log-scale loss axis: 'auto' (default) when all values are positive and span 50× or more. */
  logLoss?: boolean | 'auto'
}

const COLORS = { raw: '#9ecae1', ema: '#08519c', sts: '#d94801', grid: '#e5e5e5', axis: '#444', text: '#222' }
const PART_COLORS = ['#31a354', '#756bb1', '#e6550d', '#636363', '#dd3497']
const FONT = 'font-family="Helvetica, Arial, sans-serif"'

/** An SVG document with a loss panel and, when any point has `sts`, an STS panel below it. */
export function lossCurveSvg(history: HistoryPoint[], options: PlotOptions = {}): string {
  const width = options.width ?? 860
  const title = options.title ?? 'Training'
  const pts = history.filter((p) => Number.isFinite(p.step) && Number.isFinite(p.loss)).sort((a, b) => a.step - b.step)
  const stsPts = history
    .filter((p) => Number.isFinite(p.step) && typeof p.sts === 'number' && Number.isFinite(p.sts))
    .sort((a, b) => a.step - b.step)
  const margin = { left: 72, right: 24, top: 48, gap: 64, bottom: 52 }
  const lossH = 300
  const stsH = stsPts.length ? 220 : 0
  const height = margin.top + lossH + (stsH ? margin.gap + stsH : 0) + margin.bottom
  const plotW = width - margin.left - margin.right
  const steps = [...pts.map((p) => p.step), ...stsPts.map((p) => p.step)]
  const xDomain = padDomain(Math.min(...steps), Math.max(...steps), true)

  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(
    `<text x="${width / 2}" y="28" text-anchor="middle" font-size="17" font-weight="bold" fill="${COLORS.text}">${esc(title)}</text>`,
  )

  // ---- loss panel ----
  const lossBox = { x: margin.left, y: margin.top, w: plotW, h: lossH }
  if (pts.length === 0) {
    out.push(...axes(lossBox, xDomain, [0, 1], 'step', 'loss').els)
    out.push(
      `<text x="${lossBox.x + plotW / 2}" y="${lossBox.y + lossH / 2}" text-anchor="middle" font-size="14" fill="#888">no loss values</text>`,
    )
  } else {
    const raw = pts.map((p) => p.loss)
    const a = options.smoothing ?? autoSmoothing(pts.length)
    const ema = smooth(raw, a)
    const parts = [...new Set(pts.flatMap((p) => Object.keys(p.lossParts ?? {})))]
    const partSeries = parts.map((name) => {
      const sel = pts.filter((p) => Number.isFinite(p.lossParts?.[name]))
      return {
        name,
        steps: sel.map((p) => p.step),
        values: smooth(
          sel.map((p) => p.lossParts![name]),
          a,
        ),
      }
    })
    const all = [...raw, ...partSeries.flatMap((s) => s.values)]
    const [lo, hi] = [Math.min(...all), Math.max(...all)]
    // Contrastive losses fall by orders of magnitude: a linear axis would flatten everything after the start.
    const logY = options.logLoss === 'auto' || options.logLoss === undefined ? lo > 0 && hi / lo >= 50 : options.logLoss && lo > 0
    const yDomain: [number, number] = logY
      ? [Math.pow(10, Math.floor(Math.log10(lo))), Math.pow(10, Math.ceil(Math.log10(hi)))]
      : padDomain(lo, hi, false)
    const { sx, sy, els } = axes(lossBox, xDomain, yDomain, 'step', 'loss', logY)
    out.push(...els)
    const xs = pts.map((p) => p.step)
    const rawPts = decimate(xs, raw, sx, sy, plotW)
    out.push(line(rawPts, COLORS.raw, 1))
    partSeries.forEach((s, i) =>
      out.push(line(decimate(s.steps, s.values, sx, sy, plotW), PART_COLORS[i % PART_COLORS.length], 1.5, '6 4')),
    )
    out.push(line(decimate(xs, ema, sx, sy, plotW), COLORS.ema, 2.2))
    if (pts.length === 1) out.push(dot(sx(xs[0]), sy(raw[0]), COLORS.ema, 3.5))
    out.push(
      legend(
        lossBox,
        [
          { label: 'loss (raw)', color: COLORS.raw, width: 1 },
          { label: `loss (EMA ${a.toFixed(a >= 0.99 ? 3 : 2)})`, color: COLORS.ema, width: 2.2 },
          ...partSeries.map((s, i) => ({ label: `${s.name} (EMA)`, color: PART_COLORS[i % PART_COLORS.length], width: 1.5, dash: '6 4' })),
        ],
        rawPts,
      ),
    )
    const last = pts[pts.length - 1]
    out.push(note(lossBox, `last ${fmtNum(ema[ema.length - 1])} (EMA) at step ${last.step}`))
  }

  // ---- STS panel ----
  if (stsPts.length) {
    const box = { x: margin.left, y: margin.top + lossH + margin.gap, w: plotW, h: stsH }
    const vals = stsPts.map((p) => p.sts!)
    const { sx, sy, els } = axes(
      box,
      xDomain,
      padDomain(Math.min(...vals), Math.max(...vals), false),
      'step',
      options.stsAxis ?? 'Spearman ×100',
    )
    out.push(...els)
    const xy = stsPts.map((p) => [sx(p.step), sy(p.sts!)] as [number, number])
    out.push(line(xy, COLORS.sts, 1.8))
    for (const [x, y] of xy) out.push(dot(x, y, COLORS.sts, 3))
    let best = 0
    vals.forEach((v, i) => v > vals[best] && (best = i))
    out.push(`<circle cx="${f(xy[best][0])}" cy="${f(xy[best][1])}" r="7" fill="none" stroke="${COLORS.sts}" stroke-width="1.5"/>`)
    out.push(legend(box, [{ label: options.stsLabel ?? 'STS-B dev Spearman', color: COLORS.sts, width: 1.8, dot: true }], xy))
    out.push(note(box, `best ${vals[best].toFixed(2)} at step ${stsPts[best].step}`))
  }
  out.push('</svg>')
  return out.join('\n') + '\n'
}

// ---- helpers ----

interface Box {
  x: number
  y: number
  w: number
  h: number
}

/** TensorBoard-style EMA with bias correction, so the first values are not pulled towards 0. */
function smooth(v: number[], a: number): number[] {
  let m = 0,
    w = 0
  return v.map((x) => {
    m = a * m + (1 - a) * x
    w = a * w + (1 - a)
    return m / w
  })
}

/** An averaging window (1/(1-a) points) of 2% of the run, between 2.5 and 20 points: little lag. */
function autoSmoothing(n: number): number {
  return Math.min(0.95, Math.max(0.6, 1 - 50 / Math.max(n, 1)))
}

/** Widens a degenerate or tight domain, then rounds it out to nice ticks. */
function padDomain(lo: number, hi: number, isStep: boolean): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1]
  // A range of a few ulps (a one-step run: its loss and the loss's EMA, (1 − a)·x / (1 − a), differ in the last bit)
  // is a point: ticks a few ulps apart would never advance.
  if (hi - lo <= 1e-9 * Math.max(Math.abs(lo), Math.abs(hi))) {
    const mid = (lo + hi) / 2
    lo = hi = mid
  }
  if (lo === hi) {
    const d = isStep ? 1 : Math.abs(lo) * 0.1 || 1
    lo -= d
    hi += d
    if (isStep && lo < 0) {
      hi -= lo
      lo = 0
    }
  } else if (!isStep) {
    const d = (hi - lo) * 0.05
    lo = lo >= 0 ? Math.max(0, lo - d) : lo - d // a loss >= 0 gets no axis below 0
    hi += d
  }
  const step = tickStep(lo, hi)
  return [Math.floor(lo / step) * step, Math.ceil(hi / step) * step]
}

/** A 1/2/5×10^k step giving about 5–8 ticks. */
function tickStep(lo: number, hi: number, target = 6): number {
  const raw = (hi - lo) / target
  const p = Math.pow(10, Math.floor(Math.log10(raw)))
  const m = raw / p
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p
}

function ticks(lo: number, hi: number, integer = false): { values: number[]; decimals: number } {
  const step = integer ? Math.max(1, tickStep(lo, hi)) : tickStep(lo, hi)
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9))
  const values: number[] = []
  // At most a few dozen ticks, whatever the domain (a step below the values' precision would not advance).
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9 && values.length < 64; v += step)
    values.push(Number(v.toFixed(decimals)))
  return { values, decimals }
}

/** Draws the grid, ticks, frame and labels of a panel; returns its scales. */
function axes(box: Box, xd: [number, number], yd: [number, number], xLabel: string, yLabel: string, logY = false) {
  const ty = logY ? Math.log10 : (v: number) => v
  const [y0, y1] = [ty(yd[0]), ty(yd[1])]
  const sx = (v: number) => box.x + ((v - xd[0]) / (xd[1] - xd[0])) * box.w
  const sy = (v: number) => box.y + box.h - ((ty(v) - y0) / (y1 - y0)) * box.h
  const els: string[] = []
  const bottom = box.y + box.h
  const xt = ticks(xd[0], xd[1], true) // steps are integers
  const yt = logY ? logTicks(yd[0], yd[1]) : ticks(yd[0], yd[1])
  for (const v of xt.values) {
    const x = f(sx(v))
    els.push(`<line x1="${x}" y1="${box.y}" x2="${x}" y2="${bottom}" stroke="${COLORS.grid}"/>`)
    els.push(`<line x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 5}" stroke="${COLORS.axis}"/>`)
    els.push(
      `<text x="${x}" y="${bottom + 18}" text-anchor="middle" font-size="11" fill="${COLORS.text}">${fmtTick(v, xt.decimals)}</text>`,
    )
  }
  for (const v of yt.values) {
    const y = f(sy(v))
    els.push(`<line x1="${box.x}" y1="${y}" x2="${box.x + box.w}" y2="${y}" stroke="${COLORS.grid}"/>`)
    els.push(`<line x1="${box.x - 5}" y1="${y}" x2="${box.x}" y2="${y}" stroke="${COLORS.axis}"/>`)
    els.push(
      `<text x="${box.x - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="11" fill="${COLORS.text}">${fmtTick(v, yt.decimals)}</text>`,
    )
  }
  els.push(`<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="none" stroke="${COLORS.axis}"/>`)
  els.push(
    `<text x="${box.x + box.w / 2}" y="${bottom + 38}" text-anchor="middle" font-size="12" fill="${COLORS.text}">${esc(xLabel)}</text>`,
  )
  const cy = box.y + box.h / 2
  const label = logY ? `${yLabel} (log scale)` : yLabel
  els.push(
    `<text x="${box.x - 56}" y="${cy}" text-anchor="middle" font-size="12" fill="${COLORS.text}" transform="rotate(-90 ${box.x - 56} ${cy})">${esc(label)}</text>`,
  )
  return { sx, sy, els }
}

/** Powers of ten, plus 2× and 5× when the range spans few decades. */
function logTicks(lo: number, hi: number): { values: number[]; decimals: number } {
  const e0 = Math.floor(Math.log10(lo) + 1e-9),
    e1 = Math.ceil(Math.log10(hi) - 1e-9)
  const mults = e1 - e0 <= 2 ? [1, 2, 5] : [1]
  const values: number[] = []
  for (let e = e0; e <= e1; e++)
    for (const m of mults) {
      const v = Number((m * Math.pow(10, e)).toPrecision(6))
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) values.push(v)
    }
  return { values, decimals: -1 }
}

/**
 * Screen points for a series; with far more points than pixels, keeps each pixel column's first, min,
 * max and last value, so spikes survive and a 15k-step run stays a small file.
 */
function decimate(xs: number[], ys: number[], sx: (v: number) => number, sy: (v: number) => number, w: number): [number, number][] {
  const pts = xs.map((x, i) => [sx(x), sy(ys[i])] as [number, number])
  if (pts.length <= 2 * w) return pts
  const out: [number, number][] = []
  for (let i = 0; i < pts.length;) {
    const col = Math.floor(pts[i][0])
    let j = i,
      lo = i,
      hi = i
    while (j < pts.length && Math.floor(pts[j][0]) === col) {
      if (pts[j][1] < pts[lo][1]) lo = j
      if (pts[j][1] > pts[hi][1]) hi = j
      j++
    }
    for (const k of [...new Set([i, Math.min(lo, hi), Math.max(lo, hi), j - 1])]) out.push(pts[k])
    i = j
  }
  return out
}

function line(pts: [number, number][], color: string, width: number, dash?: string): string {
  const d = dash ? ` stroke-dasharray="${dash}"` : ''
  return `<polyline fill="none" stroke="${color}" stroke-width="${width}" stroke-linejoin="round"${d} points="${pts.map(([x, y]) => `${f(x)},${f(y)}`).join(' ')}"/>`
}

function dot(x: number, y: number, color: string, r: number): string {
  return `<circle cx="${f(x)}" cy="${f(y)}" r="${r}" fill="${color}"/>`
}

/** A legend box in whichever corner of the panel covers the fewest data points. */
function legend(
  box: Box,
  items: { label: string; color: string; width: number; dash?: string; dot?: boolean }[],
  data: [number, number][],
): string {
  const rowH = 18
  const w = 24 + 10 + Math.max(...items.map((i) => i.label.length)) * 7.2 + 12
  const h = items.length * rowH + 8
  const corners = [
    [box.x + box.w - w - 8, box.y + 8],
    [box.x + box.w - w - 8, box.y + box.h - h - 8],
    [box.x + 8, box.y + box.h - h - 8],
    [box.x + 8, box.y + 8],
  ]
  const covered = ([cx, cy]: number[]) =>
    data.filter(([px, py]) => px >= cx - 4 && px <= cx + w + 4 && py >= cy - 4 && py <= cy + h + 4).length
  let [x, y] = corners[0]
  let least = covered(corners[0])
  for (const c of corners.slice(1)) {
    const n = covered(c)
    if (n < least) {
      ;[x, y] = c
      least = n
    }
  }
  const els = [
    `<g class="legend"><rect x="${f(x)}" y="${f(y)}" width="${f(w)}" height="${h}" fill="#ffffff" fill-opacity="0.85" stroke="#bbb"/>`,
  ]
  items.forEach((it, i) => {
    const cy = f(y + 4 + rowH * i + rowH / 2)
    const d = it.dash ? ` stroke-dasharray="${it.dash}"` : ''
    els.push(`<line x1="${f(x + 8)}" y1="${cy}" x2="${f(x + 32)}" y2="${cy}" stroke="${it.color}" stroke-width="${it.width}"${d}/>`)
    if (it.dot) els.push(dot(x + 20, Number(cy), it.color, 3))
    els.push(`<text x="${f(x + 40)}" y="${cy}" dominant-baseline="middle" font-size="12" fill="${COLORS.text}">${esc(it.label)}</text>`)
  })
  els.push('</g>')
  return els.join('')
}

/** A small caption just above the panel, right-aligned (clear of the top y tick label). */
function note(box: Box, text: string): string {
  return `<text x="${box.x + box.w}" y="${box.y - 8}" text-anchor="end" font-size="12" fill="#555">${esc(text)}</text>`
}

function f(v: number): string {
  return (Math.round(v * 10) / 10).toString()
}

function fmtTick(v: number, decimals: number): string {
  if (decimals < 0) return v >= 1e-3 && v < 1e5 ? String(v) : v.toExponential(0) // log-scale tick
  if (Math.abs(v) >= 10000 && decimals === 0) return v % 1000 === 0 ? `${v / 1000}k` : v.toLocaleString('en-US')
  return v.toFixed(decimals)
}

function fmtNum(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4)
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}
