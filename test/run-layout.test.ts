// The output folder keeps the run's state apart from the model (issue 14): the model files at the top,
// the checkpoint and logs under run/. Runs written before run/ existed (everything at the top) still
// resume, with --resume DIR alone, DIR/checkpoint or DIR with its options: their logs move into run/,
// their old checkpoint goes once the first new one is written, and the weights end as an
// uninterrupted run's.
import t from 'tap'
import { existsSync, readdirSync, rmdirSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import { resumeOptions } from '../lib/train/resume-options.js'
import { RUN_FILES } from '../lib/train/out-dir.js'
import { needsCli, OUTPUT_TOP_LEVEL, runCli, tempDir, TINY_RUN, writeSentences } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-run-layout-')
const data = writeSentences(join(dir, 'data.txt'), 80)
const base = { ...TINY_RUN, data, steps: 5, saveEvery: 0, lr: 1e-3 }

const whole = join(dir, 'whole')
t.before(async () => {
  await train({ ...base, out: whole })
})

/** A run stopped after step 2 of 5, then rearranged as runs before run/ left it: its state at the top. */
async function olderLayoutRun(name: string): Promise<string> {
  const out = join(dir, name)
  const ctl = new AbortController()
  await train({ ...base, out }, { signal: ctl.signal, onStep: (s) => void (s.step === 2 && ctl.abort()) })
  for (const f of readdirSync(join(out, 'run'))) renameSync(join(out, 'run', f), join(out, f))
  rmdirSync(join(out, 'run'))
  return out
}

t.test('a finished run: the model at the top, the run state in run/', async (t) => {
  t.same(readdirSync(whole).sort(), OUTPUT_TOP_LEVEL, 'top level: model files and run/')
  t.same(
    readdirSync(join(whole, 'run')).sort(),
    ['checkpoint', 'loss_curve.svg', 'metrics.json', 'train.jsonl', 'training_args.json'],
    'run/: checkpoint and logs',
  )
  t.same(
    readdirSync(join(whole, 'run', 'checkpoint')).sort(),
    ['state.json', 'state.safetensors', 'vocab.txt'],
    'the checkpoint: weights and optimizer state, and its copy of the tokenizer',
  )
  const card = readFileSync(join(whole, 'README.md'), 'utf8')
  t.match(card, /The model, at the top of the folder: `config.json`, `model.safetensors`/)
  t.match(card, /The run, kept apart in `run\/` \(not needed to use the model; safe to delete once training is over\)/)
})

t.test('an older-layout run resumes with its options and state found at the top', async (t) => {
  const out = await olderLayoutRun('older-lib')
  t.ok(existsSync(join(out, 'checkpoint', 'state.json')) && existsSync(join(out, 'training_args.json')), 'the older layout')
  const o = await resumeOptions(out)
  t.equal(o?.out, out, 'resumeOptions: out is the run')
  t.equal(o?.steps, 5, 'resumeOptions: the run options come from the top-level training_args.json')
  t.equal((await resumeOptions(join(out, 'checkpoint')))?.out, out, 'resumeOptions from DIR/checkpoint: out is DIR')
  const notes: string[] = []
  const r = await train({ ...base, out, resume: out }, { onMessage: (m) => notes.push(m) })
  t.equal(r.steps, 5)
  t.match(notes.join('\n'), new RegExp(`resuming from ${out}/checkpoint at step 2 of 5`))
  t.ok(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors'))), 'identical final weights')
  t.same(readdirSync(out).sort(), OUTPUT_TOP_LEVEL, 'the top holds only the model files and run/ now')
  t.same(
    readdirSync(join(out, 'run')).sort(),
    ['checkpoint', 'loss_curve.svg', 'metrics.json', 'train.jsonl', 'training_args.json'],
    'the logs moved into run/, the new checkpoint is there, the old one is gone',
  )
  const steps = readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).step)
  t.same(steps, [1, 2, 3, 4, 5], 'the moved log continues: each step once')
})

t.test('an older-layout run: --resume DIR alone and --resume DIR/checkpoint from the CLI', needsCli, async (t) => {
  for (const [name, at] of [
    ['older-cli', ''],
    ['older-cli-checkpoint', 'checkpoint'],
  ] as const) {
    const out = await olderLayoutRun(name)
    const r = runCli(['train', '--resume', join(out, at)])
    t.equal(r.status, 0, r.status === 0 ? `${name}: exits 0` : r.stderr)
    t.match(r.stderr, /resuming from .*checkpoint at step 2 of 5/)
    t.ok(
      readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors'))),
      `${name}: identical final weights`,
    )
    t.notOk(existsSync(join(out, 'checkpoint')), `${name}: the top-level checkpoint was superseded`)
    t.ok(existsSync(join(out, 'run', 'checkpoint', 'state.json')), `${name}: the checkpoint is in run/`)
  }
})

t.test('a directory with an older-layout run is not overwritten silently', async (t) => {
  const out = await olderLayoutRun('older-refused')
  await t.rejects(train({ ...base, out }), /already holds a training run \(checkpoint, train\.jsonl, training_args\.json/)
  t.ok(RUN_FILES.includes('run/checkpoint') && RUN_FILES.includes('checkpoint'), 'both layouts mark a run')
  await train({ ...base, out, overwrite: true })
  t.notOk(existsSync(join(out, 'checkpoint')), '--overwrite removed the older layout checkpoint')
  t.notOk(existsSync(join(out, 'training_args.json')), '--overwrite removed the older layout log')
  t.ok(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors'))), 'the new run trained')
})
