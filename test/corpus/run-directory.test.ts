// Regression corpus of the adversarial pass on training runs (issue 9): every case here once lost
// data, corrupted a run or resumed it wrongly. Each builds a tiny run and attacks its output directory.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { train } from '../../lib/train/train.js'
import { cli, needsCli, tempDir, TINY_RUN, writeSentences } from '../helpers/train-corpus.js'

const dir = tempDir('simcsepp-corpus-')
const data = writeSentences(join(dir, 'sentences.txt'), 80)
const base = { ...TINY_RUN, data }
const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!

t.test('an existing run is never overwritten silently', async (t) => {
  const out = join(dir, 'existing')
  await train({ ...base, out })
  const log = readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
  await t.rejects(train({ ...base, out }), /already holds a training run \(run\/checkpoint, run\/train\.jsonl.*--resume .*--overwrite/)
  t.equal(readFileSync(join(out, 'run', 'train.jsonl'), 'utf8'), log, 'the refused run changed nothing')
  await t.rejects(train({ ...base, out, overwrite: true, resume: out }), /either resume .* or overwrite/)
  const again = await train({ ...base, out, overwrite: true })
  t.equal(again.steps, 3, '--overwrite starts over')
})

t.test('two runs on one directory: the second is refused, naming the holder', async (t) => {
  const out = join(dir, 'locked')
  mkdirSync(out)
  writeFileSync(join(out, '.simcsepp.lock'), JSON.stringify({ pid: process.ppid, host: hostname(), started: 'earlier' }))
  await t.rejects(train({ ...base, out }), new RegExp(`in use by another training \\(pid ${process.ppid}, started earlier\\)`))
  writeFileSync(join(out, '.simcsepp.lock'), JSON.stringify({ pid: deadPid, host: hostname(), started: 'earlier' }))
  await train({ ...base, out })
  t.notOk(existsSync(join(out, '.simcsepp.lock')), "a dead holder's lock is taken over, and released at the end")
})

t.test('temporaries of killed runs are removed on start and on resume', async (t) => {
  const out = join(dir, 'temps')
  mkdirSync(join(out, `checkpoint.tmp-${deadPid}`), { recursive: true })
  writeFileSync(join(out, `checkpoint.tmp-${deadPid}`, 'state.safetensors'), Buffer.alloc(4096))
  // In run/ (where a run writes them now) and at the top (where runs from before run/ did).
  mkdirSync(join(out, 'run', `checkpoint.tmp-${deadPid}`), { recursive: true })
  writeFileSync(join(out, 'run', `metrics.json.tmp-${deadPid}`), '{')
  const notes: string[] = []
  await train({ ...base, out }, { onMessage: (m) => notes.push(m) })
  t.notOk(existsSync(join(out, `checkpoint.tmp-${deadPid}`)))
  t.notOk(existsSync(join(out, 'run', `checkpoint.tmp-${deadPid}`)))
  t.notOk(existsSync(join(out, 'run', `metrics.json.tmp-${deadPid}`)))
  t.match(notes.join('\n'), /removed 3 temporary file/)
})

t.test("resume checks the data's contents, not its name", async (t) => {
  const out = join(dir, 'fingerprint')
  const own = join(dir, 'own-data.txt')
  writeFileSync(own, readFileSync(data))
  const ctl = new AbortController()
  await train({ ...base, data: own, steps: 4, out }, { signal: ctl.signal, onStep: (x) => x.step === 1 && ctl.abort() })
  appendFileSync(own, 'one more line for the data\n')
  await t.rejects(
    train({ ...base, data: own, steps: 4, out, resume: out }),
    /data file is not the one the checkpointed run read \(then 80 sentences/,
  )
})

t.test('state.json is validated; a corrupt checkpoint falls back to checkpoint.old', async (t) => {
  const out = join(dir, 'state')
  const ctl = new AbortController()
  await train({ ...base, steps: 4, out }, { signal: ctl.signal, onStep: (x) => x.step === 2 && ctl.abort() })
  const stateFile = join(out, 'run', 'checkpoint', 'state.json')
  const good = readFileSync(stateFile, 'utf8')
  writeFileSync(stateFile, good.replace(/"step": 2/, '"step": "ten"'))
  await t.rejects(train({ ...base, steps: 4, out, resume: out }), /state\.json: field step must be a non-negative integer \(found "ten"\)/)
  writeFileSync(stateFile, good.replace(/"step": 2/, '"step": 1000'))
  await t.rejects(train({ ...base, steps: 4, out, resume: out }), /at step 1000, past the 4 steps of this run/)
  // A corrupted newest checkpoint with an intact older one beside it: resume from the older one.
  writeFileSync(stateFile, good)
  rmSync(join(out, 'run', 'checkpoint.old'), { recursive: true, force: true })
  const ck = join(out, 'run', 'checkpoint')
  const old = join(out, 'run', 'checkpoint.old')
  cpSync(ck, old, { recursive: true })
  writeFileSync(join(ck, 'state.safetensors'), readFileSync(join(ck, 'state.safetensors')).subarray(0, 100))
  const notes: string[] = []
  const r = await train({ ...base, steps: 4, out, resume: out }, { onMessage: (m) => notes.push(m) })
  t.equal(r.steps, 4)
  t.match(notes.join('\n'), /resuming from the previous checkpoint .*checkpoint\.old instead/)
})

t.test('--out that cannot be a directory gets a clear error at once', async (t) => {
  const file = join(dir, 'a-file')
  writeFileSync(file, 'x')
  await t.rejects(train({ ...base, out: file }), /--out .*a-file is a file, not a directory/)
  await t.rejects(train({ ...base, out: join(file, 'sub') }), /a-file is a file, not a directory/)
  const t0 = Date.now()
  await t.rejects(train({ ...base, out: '/proc/simcsepp-x' }), /--out \/proc\/simcsepp-x/)
  t.ok(Date.now() - t0 < 10_000, 'no spinning under /proc')
})

t.test('SIGTERM stops like Ctrl-C: after the step, with a checkpoint', needsCli, async (t) => {
  const out = join(dir, 'sigterm')
  const args = ['train', '--config', 'tiny', '--data', data, '--steps', '400', '--batch-size', '8', '--max-len', '12']
  const child = spawn(process.execPath, [cli, ...args, '--save-every', '0', '--eval-every', '0', '--out', out], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (b) => (stderr += b))
  const log = join(out, 'run', 'train.jsonl')
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (existsSync(log) && readFileSync(log, 'utf8').split('\n').filter(Boolean).length >= 2) {
        clearInterval(timer)
        child.kill('SIGTERM')
        resolve()
      }
    }, 20)
  })
  const code = await new Promise((r) => child.on('close', r))
  t.equal(code, 130, `exit code 130 ${stderr.slice(-300)}`)
  t.match(stderr, /SIGTERM: stopping after this step/)
  t.ok(existsSync(join(out, 'run', 'checkpoint', 'state.json')), 'a checkpoint was written')
})
