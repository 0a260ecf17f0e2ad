// Training output: the loss-curve SVG, the sparkline, and the progress bar.
import t from 'tap'
import { lossCurveSvg, type HistoryPoint } from '../lib/train/plot.js'
import { sparkline } from '../lib/cli/sparkline.js'
import { ProgressBar, formatDuration } from '../lib/cli/progress.js'

function history(n: number, stsEvery = 0): HistoryPoint[] {
  return Array.from({ length: n }, (_, i) => {
    const step = i + 1
    const loss = 0.01 + 3 * Math.exp(-step / 40) * (1 + 0.2 * Math.sin(step))
    const p: HistoryPoint = { step, loss, lossParts: { offdropout: loss * 0.3, dcl: loss * 0.7 } }
    if (stsEvery && step % stsEvery === 0) p.sts = 70 + 10 * (1 - Math.exp(-step / 100))
    return p
  })
}

/** Tags balance: every opened element is closed (self-closing counts), in order. */
function balanced(svg: string): boolean {
  const stack: string[] = []
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m
    if (self) continue
    if (close) {
      if (stack.pop() !== name) return false
    } else stack.push(name)
  }
  return stack.length === 0
}

t.test('loss and STS panels', async (t) => {
  const svg = lossCurveSvg(history(300, 25), { title: 'run <A & B>' })
  t.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'))
  t.ok(svg.trimEnd().endsWith('</svg>'))
  t.ok(balanced(svg), 'well-formed tags')
  t.notMatch(svg, /NaN|Infinity|undefined/)
  t.match(svg, 'run &lt;A &amp; B&gt;', 'the title is escaped')
  // raw loss, EMA loss, two parts, STS line: five polylines.
  t.equal(svg.match(/<polyline /g)?.length, 5)
  for (const label of ['loss (raw)', 'loss (EMA', 'offdropout (EMA)', 'dcl (EMA)', 'STS-B dev Spearman', 'step', 'Spearman ×100', 'best '])
    t.ok(svg.includes(label), `has "${label}"`)
  t.equal(svg.match(/<circle [^>]*fill="#d94801"/g)?.length, 13, "one marker per STS evaluation, and the legend's")
  t.match(svg, /loss \(log scale\)/, 'a loss falling 300× gets a log axis')
  t.notMatch(lossCurveSvg(history(300, 25), { logLoss: false }), /log scale/)
})

t.test('one point, no STS values', async (t) => {
  const svg = lossCurveSvg([{ step: 0, loss: 2.3 }])
  t.ok(svg.startsWith('<svg') && balanced(svg))
  t.notMatch(svg, /NaN|Infinity|undefined/)
  t.notMatch(svg, /Spearman/, 'no STS panel')
  t.match(svg, /<circle /, 'the single point is visible')
  t.match(svg, /<polyline /)
})

// A one-step run whose loss's EMA, (1 − a)·x / (1 − a), is not x in the last bit: a domain of one ulp once hung the
// tick loop (ticks that never advanced) until the process ran out of memory.
t.test('values a few ulps apart are one point', async (t) => {
  const x = 0.17652917298159332
  const a = 0.6 // autoSmoothing of a one-step run
  t.not(((1 - a) * x) / (1 - a), x, 'the EMA of this loss is not the loss')
  for (const h of [[{ step: 1, loss: x, lossParts: { distill: x } }], [1, 2, 3].map((step) => ({ step, loss: 1 + step * 1e-16 }))]) {
    const svg = lossCurveSvg(h)
    t.ok(svg.startsWith('<svg') && balanced(svg))
    t.notMatch(svg, /NaN|Infinity|undefined/)
    t.ok((svg.match(/<text/g) ?? []).length < 60, 'a few ticks')
  }
})

t.test('empty and non-finite histories do not break the SVG', async (t) => {
  for (const h of [
    [],
    [
      { step: 1, loss: NaN },
      { step: 2, loss: 1 },
      { step: 3, loss: 0.5, sts: NaN },
    ],
    [{ step: 5, loss: 1, sts: 60 }],
  ]) {
    const svg = lossCurveSvg(h)
    t.ok(svg.startsWith('<svg') && balanced(svg), `${h.length} points`)
    t.notMatch(svg, /NaN|Infinity|undefined/)
  }
  const long = lossCurveSvg(history(20_000))
  t.ok(long.length < 400_000, `20k steps decimated to ${long.length} bytes`)
})

t.test('sparkline', async (t) => {
  t.equal(sparkline([1, 2, 3, 4, 5, 6, 7, 8], 8), '▁▂▃▄▅▆▇█')
  t.equal(sparkline([8, 7, 6, 5, 4, 3, 2, 1], 4), '█▆▃▁', 'buckets averaged')
  t.equal(sparkline([3, 3, 3], 10), '▄▄▄', 'constant: mid level, no wider than the data')
  t.equal(sparkline([], 10), '')
  t.equal(sparkline([1, NaN, 2], 3), '▁ █')
  t.equal(
    [
      ...sparkline(
        history(1000).map((p) => p.loss),
        50,
      ),
    ].length,
    50,
  )
})

class Sink {
  out = ''
  constructor(
    readonly isTTY: boolean,
    readonly columns?: number,
  ) {}
  write(s: string) {
    this.out += s
    return true
  }
}

t.test('progress bar on a TTY: redrawn in place, rate-limited, newline at the end', async (t) => {
  let now = 0
  const sink = new Sink(true)
  const bar = new ProgressBar({ total: 3333, stream: sink, now: () => now })
  bar.update(0, { loss: 1, sentences: 0 })
  now = 50
  bar.update(10, { loss: 0.9 }) // within 100 ms: not drawn
  t.equal(sink.out.split('\r').length - 1, 1)
  now = 100_000
  bar.update(1234, { loss: 0.123, sentences: 1234 * 64, lr: 2.5e-5 })
  const last = sink.out.split('\r').at(-1)!
  t.match(last, /^\[#{11}\.{19}\] 37% 1234\/3333 steps {2}loss 0\.123 {2}lr 2\.5e-5 {2}789\.8 sent\/s {2}ETA 2m50s/)
  bar.log('step 1250: STS 80.1')
  t.match(sink.out, /\r\x1b\[2Kstep 1250: STS 80\.1\n\r\[/, 'a message clears the bar and redraws it')
  bar.update(3333, { loss: 0.1 })
  bar.finish()
  t.ok(sink.out.endsWith('\n'))
  t.match(sink.out.split('\r').at(-1)!, /100% 3333\/3333 steps .* in 1m40s/)
  const len = sink.out.length
  bar.update(3333)
  bar.finish()
  t.equal(sink.out.length, len, 'nothing after finish')
})

t.test('progress bar on an 80-column terminal: the counts, the loss and the ETA stay visible', async (t) => {
  let now = 0
  for (const [columns, expected] of [
    [80, /^\[#{9}\.{14}\] 37% 1234\/3333 steps {2}loss 0\.123 {2}lr 2\.5e-5 {2}ETA 2m50s$/],
    [60, /^\[#{4,}\.+\] 37% 1234\/3333 steps {2}loss 0\.123 {2}ETA 2m50s$/],
    [50, /^\[[#.]{16}\] 37% 1234\/3333 steps {2}ETA 2m50s$/],
  ] as const) {
    const sink = new Sink(true, columns)
    const bar = new ProgressBar({ total: 3333, stream: sink, now: () => now })
    now = 0
    bar.update(0, { loss: 1, sentences: 0 })
    now = 100_000
    bar.update(1234, { loss: 0.123, sentences: 1234 * 64, lr: 2.5e-5 })
    const last = sink.out.split('\r').at(-1)!.replace('\x1b[K', '')
    t.ok(last.length < columns, `${columns} columns: ${last.length} characters: ${last}`)
    t.match(last, expected)
  }
})

t.test('progress on a non-TTY: a plain line every N% or N seconds', async (t) => {
  let now = 0
  const sink = new Sink(false)
  const bar = new ProgressBar({ total: 100, stream: sink, now: () => now, everyPercent: 25, everySeconds: 30 })
  for (let i = 1; i <= 100; i++) {
    now += 100
    bar.update(i, { loss: 1 / i, 'sent/s': '12.3' })
  }
  bar.finish()
  const lines = sink.out.trimEnd().split('\n')
  t.notMatch(sink.out, /\r/, 'no carriage returns in logs')
  t.same(
    lines.map((l) => l.match(/\] (\d+)%/)![1]),
    ['1', '25', '50', '75', '100'],
  )
  t.match(lines[1], /12\.3 sent\/s/)
  const slow = new Sink(false)
  const bar2 = new ProgressBar({ total: 1000, stream: slow, now: () => now })
  bar2.update(1)
  now += 31_000
  bar2.update(2)
  now += 1_000
  bar2.update(3)
  t.equal(slow.out.split('\n').length - 1, 2, 'a time-based line after 30 s')
})

t.test('formatDuration', async (t) => {
  t.equal(formatDuration(0), '0s')
  t.equal(formatDuration(45.4), '45s')
  t.equal(formatDuration(133), '2m13s')
  t.equal(formatDuration(3900), '1h05m')
  t.equal(formatDuration(2 * 86400 + 3 * 3600 + 5), '2d03h')
  t.equal(formatDuration(Infinity), '?')
})
