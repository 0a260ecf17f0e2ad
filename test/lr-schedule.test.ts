// Learning-rate schedules (--lr-schedule): transformers' get_{linear,cosine,constant}_schedule_with_warmup, written
// here from their definitions; a run logs the schedule's rate at every step, records it, and keeps it on resume.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { LR_SCHEDULES, linearSchedule, scheduledLr, type LrSchedule } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import type { StepInfo } from '../lib/train/events.js'
import { runCli, tempDir, TINY_RUN, writeSentences } from './helpers/train-corpus.js'

/** transformers' multipliers of the base rate (optimization.py), in float64. */
function reference(schedule: LrSchedule, step: number, total: number, warmup: number): number {
  if (step < warmup) return step / Math.max(1, warmup)
  if (schedule === 'constant') return 1
  const progress = (step - warmup) / Math.max(1, total - warmup)
  if (schedule === 'cosine') return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * progress)))
  return Math.max(0, (total - step) / Math.max(1, total - warmup))
}

t.test('each schedule equals transformers’ multiplier at every step', async (t) => {
  for (const schedule of LR_SCHEDULES)
    for (const [total, warmup] of [
      [100, 0],
      [100, 10],
      [7, 3],
    ]) {
      let worst = 0
      for (let step = 0; step <= total; step++)
        worst = Math.max(
          worst,
          Math.abs(scheduledLr(schedule, 2e-5, step, total, warmup) - 2e-5 * reference(schedule, step, total, warmup)),
        )
      t.ok(worst < 1e-20, `${schedule}, ${total} steps, ${warmup} warm-up: largest difference ${worst}`)
    }
  t.equal(scheduledLr('cosine', 1, 55, 100, 10), 0.5, 'cosine: half the rate halfway through the decay')
  t.equal(scheduledLr('cosine', 1, 100, 100, 10), 0, 'cosine: 0 at the end')
  t.equal(scheduledLr('constant', 3, 99, 100, 10), 3)
  for (const step of [0, 5, 10, 42, 100]) t.equal(linearSchedule(1, step, 100, 10), scheduledLr('linear', 1, step, 100, 10))
})

t.test('a cosine run logs the schedule at every step, records it, and a resume keeps it', async (t) => {
  const dir = tempDir('simcsepp-lr-schedule-')
  const data = writeSentences(join(dir, 'data.txt'), 60)
  const out = join(dir, 'run')
  const steps: StepInfo[] = []
  const run = { ...TINY_RUN, data, out, steps: 6, warmup: 2, lr: 1e-4, lrSchedule: 'cosine' as const }
  await train(run, { onStep: (s) => void steps.push(s) })
  t.same(
    steps.map((s) => s.lr),
    steps.map((_, i) => scheduledLr('cosine', 1e-4, i, 6, 2)),
  )
  t.equal(JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')).lrSchedule, 'cosine')
  t.match(readFileSync(join(out, 'README.md'), 'utf8'), /learning-rate schedule \| cosine/)
  await t.rejects(
    train({ ...run, lrSchedule: 'linear', resume: join(out, 'run', 'checkpoint') }),
    /--resume: option lrSchedule was "cosine" in the checkpointed run, now "linear"/,
  )
  await t.rejects(
    train({ ...run, out: join(dir, 'bad'), lrSchedule: 'step' as never }),
    /train: lrSchedule must be linear, cosine, constant \(got "step"\)/,
  )
})

t.test('--warmup-ratio: the warm-up as a fraction of the run, recorded, kept by a resume alone', async (t) => {
  const dir = tempDir('simcsepp-warmup-ratio-')
  const data = writeSentences(join(dir, 'data.txt'), 60)
  const out = join(dir, 'run')
  const steps: StepInfo[] = []
  // 8 steps, ratio 0.3: round(2.4) = 2 warm-up steps.
  const run = { ...TINY_RUN, data, out, steps: 8, warmupRatio: 0.3, lr: 1e-4, saveEvery: 4 }
  const ctl = new AbortController()
  await train(run, { signal: ctl.signal, onStep: (s) => void (steps.push(s), s.step === 4 && ctl.abort()) })
  const args = JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8'))
  t.match(args, { warmup: 2, warmupRatio: 0.3 }, 'the ratio and the steps it gave')
  // The command line's resume alone reads both back; the steps follow from the ratio.
  const { status, stderr } = runCli(['train', '--resume', out])
  t.equal(status, 0, stderr)
  const log = readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepInfo)
  t.same(
    log.map((s) => s.lr),
    log.map((_, i) => scheduledLr('linear', 1e-4, i, 8, 2)),
    'every step at the rate of a 2-step warm-up',
  )
  t.match(readFileSync(join(out, 'README.md'), 'utf8'), /warm-up ratio \| 0\.3 \|/)
  await t.rejects(train({ ...run, warmup: 1, out: join(dir, 'both') }), /train: give warmup \(steps\) or warmupRatio/)
  await t.rejects(train({ ...run, warmupRatio: 1, out: join(dir, 'one') }), /train: warmupRatio must be a number in \[0, 1\) \(got 1\)/)
})
