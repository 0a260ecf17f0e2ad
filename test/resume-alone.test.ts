// `simcsepp train --resume DIR` alone (issue 14): the run's options come from its training_args.json,
// options given again must match (or be ones that may change), and the result is the uninterrupted run's.
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import { spawnSync } from 'node:child_process'
import { cli, needsCli, runCli, tempDir, TINY_RUN, tinyTrainArgs, writeSentences } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-resume-alone-')
const data = writeSentences(join(dir, 'data.txt'), 80)
const csv = join(dir, 'pairs.csv')
writeFileSync(
  csv,
  'sent0,sent1\n' +
    readFileSync(data, 'utf8')
      .trim()
      .split('\n')
      .map((s) => `"${s}","${s.split(' ').reverse().join(' ')}"`)
      .join('\n') +
    '\n',
)

/** A run stopped after step 2 of 5 (its checkpoint written), and the same run uninterrupted. */
async function stoppedRun(name: string, file: string) {
  const base = { ...TINY_RUN, data: file, steps: 5, saveEvery: 0, lr: 1e-3 }
  await train({ ...base, out: join(dir, `${name}-whole`) })
  const out = join(dir, name)
  const ctl = new AbortController()
  await train({ ...base, out }, { signal: ctl.signal, onStep: (s) => void (s.step === 2 && ctl.abort()) })
  return { out, whole: join(dir, `${name}-whole`) }
}

for (const [name, file] of [
  ['text', data],
  ['pairs', csv],
] as const)
  t.test(`--resume DIR alone continues a ${name} run to the uninterrupted weights`, needsCli, async (t) => {
    const { out, whole } = await stoppedRun(name, file)
    t.notOk(existsSync(join(out, 'model.safetensors')), 'stopped before the end')
    const changed = runCli(['train', '--resume', out, '--lr', '0.5'])
    t.equal(changed.status, 1)
    t.match(changed.stderr, /--resume: option lr was 0\.001 in the checkpointed run, now 0\.5/, 'a fixed option given again must match')
    const r = runCli(['train', '--resume', out, '--save-every', '1'])
    t.equal(r.status, 0, r.stderr)
    t.match(r.stderr, /resuming from .*checkpoint at step 2 of 5/)
    t.ok(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors'))), 'identical final weights')
    t.equal(JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')).saveEvery, 1, 'an option that may change did')
  })

t.test('--resume DIR with --data again takes the rest from the run', needsCli, async (t) => {
  const { out, whole } = await stoppedRun('with-data', data)
  const r = runCli(['train', '--resume', out, '--data', data])
  t.equal(r.status, 0, r.stderr)
  t.ok(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors'))), 'identical final weights')
})

t.test('--resume DIR alone from another directory: a relative data path is named', needsCli, async (t) => {
  const out = join(dir, 'relative')
  const r = spawnSync(process.execPath, [cli, ...tinyTrainArgs('data.txt', out)], { cwd: dir, encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  const away = runCli(['train', '--resume', out])
  t.equal(away.status, 1)
  t.match(
    away.stderr,
    /--resume .*relative: the run's data data\.txt \(a path relative to where the run started\) is not found from here: give --data/,
  )
})

t.test('--resume DIR alone without a run there says what is missing', needsCli, async (t) => {
  const r = runCli(['train', '--resume', join(dir, 'nowhere')])
  t.equal(r.status, 1)
  t.match(r.stderr, /nowhere\/run\/training_args\.json: not found; --resume .*nowhere alone needs the run's training_args\.json/)
})
