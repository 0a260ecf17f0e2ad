// Training progress: a bar redrawn in place on a terminal; on a pipe or log file (non-TTY) an occasional
// plain line instead, so logs stay readable and small.

export interface ProgressStream {
  write(s: string): unknown
  isTTY?: boolean
  columns?: number
}

export interface ProgressOptions {
  /** Steps in the whole run. */
  total: number
  /** Default process.stderr. */
  stream?: ProgressStream
  /** Override the stream's isTTY (tests, forcing plain lines). */
  tty?: boolean
  /** Bar width in characters (default 30). */
  width?: number
  /** Word after done/total (default "steps"). */
  unit?: string
  /** Same as `unit`. */
  label?: string
  /** Non-TTY: print a line each time this many percent are completed (default 10)... */
  everyPercent?: number
  /** ...or when this many seconds passed since the last line (default 30). */
  everySeconds?: number
  /** TTY: least time between redraws (default 100 ms: ~10 per second). */
  redrawMs?: number
  /** Clock in milliseconds (tests). */
  now?: () => number
}

/**
 * Extra figures shown after the counts. `sentences` (cumulative count) gives the sent/s rate;
 * other entries print as `name value` (numbers to 3 significant digits, strings as they are), except
 * rates named like `sent/s`, which print as `value sent/s`.
 */
export type ProgressInfo = { loss?: number | string; sentences?: number } & Record<string, number | string | undefined>

export class ProgressBar {
  private readonly total: number
  private readonly stream: ProgressStream
  private readonly tty: boolean
  private readonly o: Required<Pick<ProgressOptions, 'width' | 'unit' | 'everyPercent' | 'everySeconds' | 'redrawMs' | 'now'>>
  private start: { t: number; done: number; sentences?: number } | null = null
  private lastDraw = -Infinity
  private lastLine = -Infinity
  private lastBucket = -1
  private lastText = ''
  private lastPrinted = -1
  private finished = false
  private done = 0
  private info: ProgressInfo = {}

  constructor(options: ProgressOptions) {
    if (!(options.total > 0)) throw new RangeError(`ProgressBar total must be > 0, got ${options.total}`)
    this.total = options.total
    this.stream = options.stream ?? process.stderr
    this.tty = options.tty ?? Boolean(this.stream.isTTY)
    this.o = {
      width: options.width ?? 30,
      unit: options.unit ?? options.label ?? 'steps',
      everyPercent: options.everyPercent ?? 10,
      everySeconds: options.everySeconds ?? 30,
      redrawMs: options.redrawMs ?? 100,
      now: options.now ?? Date.now,
    }
  }

  /** Reports `done` steps finished. Cheap to call every step: output is rate-limited. */
  update(done: number, info: ProgressInfo = {}): void {
    if (this.finished) return
    const t = this.o.now()
    // Rates count from the first update, so a resumed run's ETA is not skewed by steps done before.
    this.start ??= { t, done, sentences: info.sentences }
    this.done = Math.min(done, this.total)
    this.info = info
    if (this.tty) {
      if (t - this.lastDraw < this.o.redrawMs && done < this.total) return
      this.lastDraw = t
      this.draw(t)
    } else {
      const bucket = Math.floor((100 * this.done) / this.total / this.o.everyPercent)
      if (bucket === this.lastBucket && t - this.lastLine < this.o.everySeconds * 1000) return
      this.lastBucket = bucket
      this.lastLine = t
      this.lastPrinted = this.done
      this.stream.write(this.text(t) + '\n')
    }
  }

  /** Prints a message above the bar (e.g. an evaluation result) without garbling it. */
  log(message: string): void {
    if (this.tty && this.lastText && !this.finished) {
      this.stream.write(`\r\x1b[2K${message}\n`)
      this.draw(this.o.now())
    } else this.stream.write(message + '\n')
  }

  /** Same as `log`. */
  interrupt(message: string): void {
    this.log(message)
  }

  /** Final state and a newline (TTY) or a last line (non-TTY). Idempotent. */
  finish(info?: ProgressInfo): void {
    if (this.finished) return
    if (info) this.info = info
    const t = this.o.now()
    this.start ??= { t, done: this.done, sentences: this.info.sentences }
    if (this.tty) {
      this.draw(t)
      this.stream.write('\n')
    } else if (this.lastPrinted !== this.done || this.done < this.total) this.stream.write(this.text(t) + '\n')
    this.finished = true
  }

  /** The status line: `[####....] 37% 1234/3333 steps  loss 0.123  12.3 sent/s  ETA 2m13s`. */
  text(t = this.o.now()): string {
    return this.fit(t, Infinity)
  }

  /**
   * The status line in at most `columns` characters, so that the counts and the ETA stay visible on a
   * narrow terminal: figures are dropped (the last first) until they fit beside a bar of 10, which
   * then widens into the room left (up to its width).
   */
  fit(t: number, columns: number): string {
    const { bar, counts, figures, end } = this.parts(t)
    const line = (w: number, f: string[]) => [`[${bar(w)}] ${counts}`, ...f, ...end].join('  ')
    const kept = [...figures]
    const least = Math.min(10, this.o.width)
    while (line(least, kept).length > columns && kept.length) kept.pop()
    let width = least
    while (width < this.o.width && line(width + 1, kept).length <= columns) width++
    return line(width, kept).slice(0, columns)
  }

  private parts(t: number) {
    const frac = this.done / this.total
    const bar = (w: number) => {
      const filled = Math.round(frac * w)
      return '#'.repeat(filled) + '.'.repeat(w - filled)
    }
    const counts = `${Math.floor(frac * 100)}% ${this.done}/${this.total} ${this.o.unit}`
    const parts: string[] = []
    const { loss, sentences, ...rest } = this.info
    if (loss !== undefined) parts.push(`loss ${typeof loss === 'number' ? fmt(loss) : loss}`)
    for (const [k, v] of Object.entries(rest)) {
      if (v === undefined) continue
      const value = typeof v === 'number' ? fmt(v) : v
      parts.push(k.endsWith('/s') ? `${value} ${k}` : `${k} ${value}`)
    }
    const secs = this.start ? (t - this.start.t) / 1000 : 0
    if (secs > 0 && typeof sentences === 'number' && typeof this.start?.sentences === 'number')
      parts.push(`${((sentences - this.start.sentences) / secs).toFixed(1)} sent/s`)
    const stepsDone = this.start ? this.done - this.start.done : 0
    const end: string[] = []
    if (this.done >= this.total) end.push(`in ${formatDuration(secs)}`)
    else if (secs > 0 && stepsDone > 0) end.push(`ETA ${formatDuration(((this.total - this.done) * secs) / stepsDone)}`)
    return { bar, counts, figures: parts, end }
  }

  private draw(t: number) {
    // Below the terminal's width: a wrapped line would break \r redraws.
    const cols = this.stream.columns
    const s = cols ? this.fit(t, cols - 1) : this.text(t)
    this.lastText = s
    this.stream.write(`\r${s}\x1b[K`)
  }
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v)
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return Number(v.toPrecision(3)).toExponential() // 2.5e-5, not 2.50e-5
  return Number(v.toPrecision(3)).toString()
}

/** 45s, 2m13s, 1h05m, 2d03h; "?" for a non-finite or negative duration. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?'
  const s = Math.round(seconds)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  const h = Math.floor(m / 60)
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`
}
