// The run's log as a TensorBoard event file (`--tensorboard`): TFRecord framing with masked CRC-32C, Event and Summary
// protobufs, read back here by an independent decoder (and by TensorBoard's own EventAccumulator where the CI's
// Python has it) and compared with train.jsonl: every step's scalars and every evaluation, once each, also after a
// resume (the file is written anew from the log that was kept) and with several datasets (a loss tag each).
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import { crc32c, maskedCrc32c } from '../lib/util/crc32c.js'
import { scalarsOf } from '../lib/train/tensorboard.js'
import type { LogEntry } from '../lib/train/events.js'
import { tempDir, TINY_RUN, writeSentences, writeStsFile } from './helpers/train-corpus.js'
import { doubleOf, floatOf, protoFields } from './helpers/proto-read.js'

const dir = tempDir('simcsepp-tensorboard-')
const data = writeSentences(join(dir, 'data.txt'), 40)
const sts = writeStsFile(join(dir, 'sts.tsv'))

/** CRC-32C bit by bit (not the library's table), for the framing checks. */
function crcBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (const b of bytes) {
    c ^= b
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
  }
  return (c ^ 0xffffffff) >>> 0
}
const masked = (bytes: Uint8Array) => {
  const c = crcBitwise(bytes)
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0
}

interface Event {
  wallTime: number
  step: number
  fileVersion?: string
  scalars: [string, number][]
}

/** The events of a file, every record's two checksums verified. */
function readEvents(file: string, t: Test): Event[] {
  const b = new Uint8Array(readFileSync(file))
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const events: Event[] = []
  let bad = 0
  for (let at = 0; at < b.length;) {
    const n = Number(view.getBigUint64(at, true))
    if (view.getUint32(at + 8, true) !== masked(b.subarray(at, at + 8))) bad++
    const data = b.subarray(at + 12, at + 12 + n)
    if (view.getUint32(at + 12 + n, true) !== masked(data)) bad++
    at += 16 + n
    const e: Event = { wallTime: NaN, step: 0, scalars: [] }
    for (const f of protoFields(data)) {
      if (f.field === 1) e.wallTime = doubleOf(f.fixed64!)
      if (f.field === 2) e.step = Number(f.varint)
      if (f.field === 3) e.fileVersion = new TextDecoder().decode(f.bytes)
      if (f.field === 5)
        for (const value of protoFields(f.bytes!)) {
          const kv = [...protoFields(value.bytes!)]
          const tag = new TextDecoder().decode(kv.find((x) => x.field === 1)!.bytes)
          e.scalars.push([tag, floatOf(kv.find((x) => x.field === 2)!.fixed32!)])
        }
    }
    events.push(e)
  }
  t.equal(bad, 0, `every record's length and data checksums (${events.length} records)`)
  return events
}

const logOf = (out: string): LogEntry[] =>
  readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
const eventFiles = (out: string) => readdirSync(join(out, 'run', 'tensorboard')).filter((f) => f.startsWith('events.out.tfevents.'))

/** The file's events after the version record equal the log's entries' scalars (float32), in order. */
function sameAsLog(t: Test, out: string, datasets: string[] = []) {
  const files = eventFiles(out)
  t.equal(files.length, 1, 'one event file')
  const [version, ...events] = readEvents(join(out, 'run', 'tensorboard', files[0]), t)
  t.equal(version.fileVersion, 'brain.Event:2')
  const log = logOf(out)
  t.equal(events.length, log.length, `an event per log entry (${log.length})`)
  const want = log.map((e) => ({ step: e.step, scalars: scalarsOf(e, datasets).map(([k, v]) => [k, Math.fround(v)]) }))
  t.same(
    events.map((e) => ({ step: e.step, scalars: e.scalars })),
    want,
    'the same steps, tags and values',
  )
  t.ok(
    events.every((e, i) => i === 0 || e.wallTime >= events[i - 1].wallTime),
    'wall times in order',
  )
  return events
}

t.test('CRC-32C and its mask', async (t) => {
  t.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283, 'the check value of CRC-32C')
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 131 + 7) & 0xff)
  t.equal(crc32c(bytes), crcBitwise(bytes))
  t.equal(maskedCrc32c(bytes), masked(bytes))
})

t.test('a run with evaluations: every step and evaluation as TensorBoard scalars', async (t) => {
  const out = join(dir, 'run')
  await train({ ...TINY_RUN, data, steps: 4, evalFiles: [sts], evalEvery: 2, tensorboard: true, out })
  const events = sameAsLog(t, out)
  const tags = new Set(events.flatMap((e) => e.scalars.map(([k]) => k)))
  for (const tag of [
    'train/loss',
    'train/loss/offDropout',
    'train/loss/dcl',
    'train/learning_rate',
    'train/grad_norm',
    'eval/sts.tsv/spearman',
  ])
    t.ok(tags.has(tag), tag)
  t.same(
    events.filter((e) => e.scalars.some(([k]) => k === 'eval/sts.tsv/spearman')).map((e) => e.step),
    [0, 2, 4],
    'the evaluations at steps 0, 2 and 4',
  )
  t.match(JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')), { tensorboard: true })

  // TensorBoard's own reader, where the Python of the CI has it.
  const python = process.env.SIMCSEPP_PYTHON ?? 'python3'
  const script = [
    'import json, sys',
    'from tensorboard.backend.event_processing.event_accumulator import EventAccumulator',
    'ea = EventAccumulator(sys.argv[1]); ea.Reload()',
    "print(json.dumps({k: [[e.step, e.value] for e in ea.Scalars(k)] for k in ea.Tags()['scalars']}))",
  ].join('\n')
  const r = spawnSync(python, ['-c', script, join(out, 'run', 'tensorboard')], { encoding: 'utf8' })
  if (r.status !== 0) {
    t.comment(`TensorBoard's reader skipped: ${python} cannot run it (${r.stderr.trim().split('\n').at(-1)})`)
    return
  }
  const read = JSON.parse(r.stdout) as Record<string, [number, number][]>
  const log = logOf(out)
  t.same(
    read['train/loss'],
    log.filter((e) => e.type === 'step').map((e) => [e.step, Math.fround(e.type === 'step' ? e.loss : 0)]),
    "TensorBoard's EventAccumulator reads every step's loss",
  )
  t.same(
    read['eval/sts.tsv/spearman'].map(([s]) => s),
    [0, 2, 4],
  )
})

t.test('interrupted and resumed: the file written anew from the kept log, each step once', async (t) => {
  const out = join(dir, 'resumed')
  const run = { ...TINY_RUN, data, steps: 6, saveEvery: 2, tensorboard: true, out }
  // A run that crashed after step 4 with its last checkpoint at step 2: steps 3 and 4 are in the log and the event
  // file, and are trained again on resume.
  const ctl = new AbortController()
  const ck = join(out, 'run', 'checkpoint')
  const step2 = join(dir, 'checkpoint-2')
  await train(run, {
    signal: ctl.signal,
    onStep: (s) => {
      if (s.step === 3) cpSync(ck, step2, { recursive: true }) // step 3's checkpoint is not written yet
      if (s.step === 4) ctl.abort()
    },
  })
  rmSync(ck, { recursive: true })
  cpSync(step2, ck, { recursive: true })
  await train({ ...run, resume: out })
  const events = sameAsLog(t, out)
  t.same(
    events.map((e) => e.step),
    [1, 2, 3, 4, 5, 6],
    'steps 1 to 6, once each',
  )
})

t.test('several datasets: a loss tag each', async (t) => {
  const pairs = join(dir, 'pairs.csv')
  writeFileSync(pairs, ['anchor,positive', ...Array.from({ length: 20 }, (_, i) => `a${i} b c,d e${i} f`)].join('\n') + '\n')
  const out = join(dir, 'multi')
  await train({ ...TINY_RUN, data: [data, pairs], steps: 4, datasetSampler: 'round-robin', tensorboard: true, out })
  const events = sameAsLog(t, out, ['data.txt (simcse++)', 'pairs.csv (simcse)'])
  t.same(
    events.map((e) => e.scalars.find(([k]) => k.startsWith('train/loss/') && k.endsWith(')'))?.[0]),
    ['train/loss/data.txt (simcse++)', 'train/loss/pairs.csv (simcse)', 'train/loss/data.txt (simcse++)', 'train/loss/pairs.csv (simcse)'],
  )
})
