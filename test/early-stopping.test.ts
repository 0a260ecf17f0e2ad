// Early stopping (`--early-stopping N`, transformers' EarlyStoppingCallback patience): the run ends once N
// evaluations in a row have not beaten the best one, with that best model in the output; the count comes from the
// run's log, so a run resumed mid-way stops where the uninterrupted one does.
import t from 'tap'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import type { EvalInfo, TrainResult } from '../lib/train/events.js'
import { tempDir, TINY_RUN, WORDS, writeSentences } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-early-stopping-')
const data = writeSentences(join(dir, 'data.txt'), 200)
const sts = join(dir, 'sts.tsv')
const w = (i: number) => WORDS[i % WORDS.length]
const lines = Array.from({ length: 30 }, (_, i) => {
  const a = [w(i), w(3 * i + 1), w(5 * i + 2), w(7 * i + 3)]
  return ['main', 'x', '2024', String(i), String(i % 5), a.join(' '), [...a.slice(0, i % 5), w(11 * i), w(13 * i)].join(' ')]
})
writeFileSync(sts, lines.map((l) => l.join('\t')).join('\n') + '\n')
// A learning rate too small to move the weights: no evaluation beats the first one.
const run = { ...TINY_RUN, data, steps: 20, lr: 1e-12, evalFiles: [sts], evalEvery: 1, earlyStopping: 2, saveEvery: 0 }
const evals = (r: TrainResult) => r.history.filter((e): e is EvalInfo => e.type === 'eval')

t.test('the run ends after N evaluations without a new best, keeping the best model', async (t) => {
  const out = join(dir, 'whole')
  const messages: string[] = []
  const r = await train({ ...run, out }, { onMessage: (m) => void messages.push(m) })
  const best = r.best!
  const after = evals(r).filter((e) => e.step > best.step)
  t.ok(r.steps < 20, `stopped after step ${r.steps} of 20`)
  t.equal(r.interrupted, false)
  t.equal(after.length, 2, 'two evaluations after the best one')
  t.equal(after[after.length - 1].step, r.steps, 'the last of them at the step the run ended')
  t.ok(
    after.every((e) => e.spearman! <= (best as { spearman: number }).spearman),
    'none of them better than the best',
  )
  t.match(
    messages.join('\n'),
    new RegExp(`early stopping after step ${r.steps} of 20: 2 evaluations without a better STS Spearman than step ${best.step}'s`),
  )
  t.ok(existsSync(join(out, 'model.safetensors')) && existsSync(join(out, 'run', 'metrics.json')), 'the best model and the metrics written')
})

t.test('a run interrupted and resumed stops where the uninterrupted one does', async (t) => {
  const whole = await train({ ...run, out: join(dir, 'again') })
  const out = join(dir, 'resumed')
  const ctl = new AbortController()
  const first = await train({ ...run, out }, { signal: ctl.signal, onStep: (s) => void (s.step === 1 && ctl.abort()) })
  t.equal(first.interrupted, true)
  const rest = await train({ ...run, out, resume: out })
  t.equal(rest.steps, whole.steps, `both end after step ${whole.steps}`)
  t.same(
    evals(rest).map((e) => e.step),
    evals(whole).map((e) => e.step),
    'the same evaluations logged',
  )
})

t.test('early stopping needs evaluations', async (t) => {
  await t.rejects(
    train({ ...run, evalFiles: [], out: join(dir, 'none') }),
    /train: earlyStopping counts evaluations: give evaluation sets \(evalFiles, \.\.\.\), and an evalEvery above 0/,
  )
})
