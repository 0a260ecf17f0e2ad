// The training loop end to end at tiny scale: a run killed for real (SIGKILL) and resumed ends with
// the same weights, bit for bit, as an uninterrupted one; outputs; bad input.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import { readSafetensors } from '../lib/safetensors.js'
import { OUTPUT_TOP_LEVEL } from './helpers/train-corpus.js'
import { settledTensorBytes } from './helpers/settle-memory.js'

const cli = join(process.cwd(), 'dist', 'cli.js')
const dir = mkdtempSync(join(tmpdir(), 'simcsepp-train-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

// 300 sentences from a small grammar: enough structure for a vocabulary and real batches.
const words = [
  'the',
  'a',
  'cat',
  'dog',
  'bird',
  'sees',
  'chases',
  'likes',
  'red',
  'small',
  'quick',
  'house',
  'tree',
  'river',
  'near',
  'under',
]
let s = 7
const rnd = (n: number) => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % n
const data = join(dir, 'sentences.txt')
writeFileSync(
  data,
  Array.from({ length: 300 }, () => Array.from({ length: 4 + rnd(8) }, () => words[rnd(words.length)]).join(' ')).join('\n') + '\n',
)

const args = (out: string, extra: string[] = []) => [
  'train',
  '--config',
  'tiny',
  '--data',
  data,
  '--steps',
  '14',
  '--batch-size',
  '12',
  '--max-len',
  '16',
  '--lr',
  '1e-3',
  '--save-every',
  '2',
  '--eval-every',
  '0',
  '--seed',
  '3',
  '--out',
  out,
  ...extra,
]
const env = { ...process.env, SIMCSEPP_NUM_THREADS: '2' }

for (const [label, micro] of [
  ['', []],
  [' (with --micro-batch 10)', ['--micro-batch', '10']],
] as [string, string[]][])
  t.test(
    `a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run${label}`,
    { skip: existsSync(cli) ? false : 'dist/cli.js not built (npm run build)' },
    async (t) => {
      const whole = join(dir, `whole${micro.length}`),
        killed = join(dir, `killed${micro.length}`)
      const r = spawnSync(process.execPath, [cli, ...args(whole, micro)], { env, encoding: 'utf8' })
      t.equal(r.status, 0, `uninterrupted run exits 0 ${r.stderr.slice(-500)}`)

      // Start the same run and kill it once it has logged a few steps (mid-step, at an arbitrary point).
      const child = spawn(process.execPath, [cli, ...args(killed, micro)], { env, stdio: 'ignore' })
      const log = join(killed, 'run', 'train.jsonl')
      await new Promise<void>((resolve, reject) => {
        const timer = setInterval(() => {
          const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0
          if (lines >= 7) {
            clearInterval(timer)
            child.kill('SIGKILL')
            resolve()
          }
        }, 20)
        child.on('exit', (code) => {
          clearInterval(timer)
          if (code === 0) reject(new Error('the run finished before it could be killed'))
        })
      })
      await new Promise((r) => child.on('close', r))
      t.ok(
        existsSync(join(killed, 'run', 'checkpoint', 'state.json')) || existsSync(join(killed, 'run', 'checkpoint.old', 'state.json')),
        'a checkpoint survived the kill',
      )
      t.notOk(existsSync(join(killed, 'model.safetensors')), 'the killed run never wrote its final model')
      const resumed = spawnSync(process.execPath, [cli, ...args(killed, [...micro, '--resume', killed])], { env, encoding: 'utf8' })
      t.equal(resumed.status, 0, `resumed run exits 0 ${resumed.stderr.slice(-500)}`)
      t.match(resumed.stderr, /resuming from .* at step \d+ of 14/)

      const a = readFileSync(join(whole, 'model.safetensors')),
        b = readFileSync(join(killed, 'model.safetensors'))
      t.ok(a.equals(b), 'model.safetensors is byte-identical')
      const ca = await readSafetensors(join(whole, 'run', 'checkpoint', 'state.safetensors')),
        cb = await readSafetensors(join(killed, 'run', 'checkpoint', 'state.safetensors'))
      for (const name of ['params', 'adam.m', 'adam.v']) {
        t.ok(Buffer.from(ca.get(name)!.data.buffer).equals(Buffer.from(cb.get(name)!.data.buffer)), `${name} (with the MLP head) identical`)
      }
      const steps = readFileSync(join(killed, 'run', 'train.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).step)
      t.same(
        steps,
        Array.from({ length: 14 }, (_, i) => i + 1),
        'the log holds each step once, in order',
      )
    },
  )

t.test('outputs: Hugging Face and sentence-transformers files, metrics, curve', async (t) => {
  const out = join(dir, 'lib-run')
  const seen: number[] = []
  const result = await train(
    { config: 'tiny', data, steps: 4, batchSize: 8, maxLen: 16, out, evalEvery: 0, saveEvery: 0, seed: 1 },
    { onStep: (s) => seen.push(s.step) },
  )
  t.same(seen, [1, 2, 3, 4], 'onStep is called for every step')
  for (const f of [
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'vocab.txt',
    'modules.json',
    '1_Pooling/config.json',
    'config_sentence_transformers.json',
    'README.md',
    'run/training_args.json',
    'run/metrics.json',
    'run/train.jsonl',
    'run/loss_curve.svg',
  ]) {
    t.ok(existsSync(join(out, f)), `${f} written`)
  }
  t.same(readdirSync(out).sort(), OUTPUT_TOP_LEVEL, 'the top holds the model files and run/, nothing else')
  const weights = await readSafetensors(join(out, 'model.safetensors'))
  t.notOk(
    [...weights.keys()].some((k) => k.startsWith('mlp.')),
    'the MLP head is not in model.safetensors',
  )
  t.ok(weights.has('encoder.layer.1.output.LayerNorm.weight'), 'BertModel names')
  const pooling = JSON.parse(readFileSync(join(out, '1_Pooling', 'config.json'), 'utf8'))
  t.equal(pooling.pooling_mode_cls_token, true)
  const line = JSON.parse(readFileSync(join(out, 'run', 'train.jsonl'), 'utf8').split('\n')[0])
  for (const k of ['step', 'loss', 'parts', 'lr', 'gradNorm', 'sentencesPerSecond', 'alignment', 'uniformity'])
    t.ok(k in line, `train.jsonl has ${k}`)
  t.ok(Number.isFinite(line.parts.offDropout) && Number.isFinite(line.parts.dcl), 'SimCSE++ logs its two parts')
  t.equal(result.history.filter((h) => h.type === 'step').length, 4)
})

t.test('--steps 0 writes the initialised model', async (t) => {
  const out = join(dir, 'zero')
  await train({ config: 'tiny', data, steps: 0, out, evalEvery: 0 })
  t.ok(existsSync(join(out, 'model.safetensors')))
})

t.test('bad input gets a clear error', async (t) => {
  const empty = join(dir, 'empty.txt')
  writeFileSync(empty, '\n\n   \n')
  const bad = join(dir, 'bad.txt')
  writeFileSync(bad, Buffer.from([0x68, 0x69, 0x0a, 0xff, 0xfe, 0x0a]))
  const base = { config: 'tiny' as const, steps: 1, out: join(dir, 'bad-out') }
  await t.rejects(train({ ...base, data: join(dir, 'missing.txt') }), /missing\.txt/)
  await t.rejects(train({ ...base, data: empty }), /empty/i)
  await t.rejects(train({ ...base, data: bad }), /UTF-8.*line 2|line 2.*UTF-8/i)
  await t.rejects(train({ ...base, data, objective: 'simclr' as never }), /objective must be one of/)
  await t.rejects(
    train({ ...base, data, batchSize: 1 }),
    /batchSize must be an integer >= 2 \(got 1\): a batch of 1 sentence has no in-batch negatives/,
  )
  await t.rejects(train({ ...base, data, lr: -1 }), /lr must be a number in \(0, 1\] \(got -1\)/)
  await t.rejects(train({ ...base, data, resume: join(dir, 'nowhere') }), /no checkpoint there/)
  await t.rejects(train({ ...base, data, learningRate: 1 } as never), /unknown option 'learningRate'/)
})

t.test('a run that fails frees what it held: tensors, graphs, the data file', async (t) => {
  const before = await settledTensorBytes()
  const base = { config: 'tiny' as const, data, steps: 4, batchSize: 8, maxLen: 16, evalEvery: 0, saveEvery: 0 }
  // A hook that throws at step 2 (as a caller's logging might); a 1-sentence file fails after it was opened.
  const failing = train(
    { ...base, out: join(dir, 'fails-hook') },
    {
      onStep: (s) => {
        if (s.step === 2) throw new Error('the hook failed')
      },
    },
  )
  await t.rejects(failing, /the hook failed/)
  t.equal(await settledTensorBytes(), before, 'no tensor storage left after a failed run')
  const one = join(dir, 'one-sentence.txt')
  writeFileSync(one, 'just one sentence\n')
  await t.rejects(train({ ...base, data: one, out: join(dir, 'fails-one') }), /only 1 sentence/)
  t.equal(await settledTensorBytes(), before)
  // And the same run, succeeding, also ends holding nothing.
  await train({ ...base, out: join(dir, 'fails-then-ok') })
  t.equal(await settledTensorBytes(), before, 'nor after a finished one')
})

t.test('an aborted run writes a checkpoint and resumes to the same weights', async (t) => {
  const base = { config: 'tiny' as const, data, steps: 6, batchSize: 8, maxLen: 16, evalEvery: 0, saveEvery: 0, seed: 5 }
  const whole = await train({ ...base, out: join(dir, 'abort-whole') })
  t.equal(whole.interrupted, false)
  const ctl = new AbortController()
  const out = join(dir, 'abort')
  const first = await train(
    { ...base, out },
    {
      signal: ctl.signal,
      onStep: (s) => {
        if (s.step === 2) ctl.abort()
      },
    },
  )
  t.equal(first.interrupted, true)
  t.equal(first.steps, 2, 'stopped after the step in progress')
  t.notOk(existsSync(join(out, 'model.safetensors')), 'no final model yet')
  const second = await train({ ...base, out, resume: out })
  t.equal(second.interrupted, false)
  t.ok(
    readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(dir, 'abort-whole', 'model.safetensors'))),
    'identical final weights',
  )
})
