// The demo (`simcsepp train` without options): the held-out retrieval score at intervals during
// training (the loss of the tiny model settles early, so it is what shows progress), reached by pausing
// at a checkpoint and resuming, which ends with the weights of a run that never paused; its run state
// (training sentences, results, checkpoint) under run/, the model at the top.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runDemo, type DemoResult } from '../lib/demo/demo.js'
import { OUTPUT_TOP_LEVEL, tempDir } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-demo-')
const small = { steps: 6, heldOut: 60, seed: 7, device: 'cpu' as const }

t.test('retrieval every 2 steps: scores at 2 and 4, the same final weights as without pauses', async (t) => {
  const messages: string[] = []
  const seen: number[] = []
  const scored: number[] = []
  const paused = await runDemo(
    { ...small, out: join(dir, 'paused'), retrievalEvery: 2 },
    { onMessage: (m) => messages.push(m), onStep: (s) => seen.push(s.step), onRetrieval: (r) => scored.push(r.step) },
  )
  const plain = await runDemo({ ...small, out: join(dir, 'plain'), retrievalEvery: 0 })
  t.same(seen, [1, 2, 3, 4, 5, 6], 'every step reported once')
  t.same(scored, [2, 4], 'onRetrieval at steps 2 and 4')
  t.same(
    paused.progress.map((p) => p.step),
    [2, 4],
    'result.progress',
  )
  for (const p of paused.progress) {
    t.ok(
      p.recallAt1 >= 0 && p.recallAt1 <= 100 && p.mrr > 0 && p.mrr <= 1,
      `step ${p.step}: recall@1 ${p.recallAt1.toFixed(1)}, MRR ${p.mrr.toFixed(3)}`,
    )
  }
  t.not(paused.progress[0].mrr, paused.before.mrr, 'the score moved from the random init by step 2')
  t.same(plain.progress, [], 'retrievalEvery 0: no intermediate scores')
  const weights = (r: DemoResult) => readFileSync(join(r.out, 'model.safetensors'))
  t.ok(weights(paused).equals(weights(plain)), 'identical final weights with and without the pauses')
  t.same(paused.after, plain.after, 'the same final retrieval score')
  t.notMatch(messages.join('\n'), /resuming|stopped after/, "the demo's own pauses and resumes are not announced")
  t.equal(paused.training.history.filter((h) => h.type === 'step').length, 6, 'the history holds all 6 steps')
  t.same(readdirSync(paused.out).sort(), OUTPUT_TOP_LEVEL, 'the model at the top, the rest in run/')
  t.same(
    readdirSync(join(paused.out, 'run')).sort(),
    ['checkpoint', 'demo-results.json', 'loss_curve.svg', 'metrics.json', 'train-sentences.txt', 'train.jsonl', 'training_args.json'],
    'run/: the training sentences, the results and the run state',
  )
  const saved = JSON.parse(readFileSync(join(paused.out, 'run', 'demo-results.json'), 'utf8'))
  t.same(
    saved.progress.map((p: { step: number }) => p.step),
    [2, 4],
    'demo-results.json records the scores during training',
  )
})

t.test('Ctrl-C during a resumed stretch stops the demo with a checkpoint', async (t) => {
  const stop = new AbortController()
  const messages: string[] = []
  const r = await runDemo(
    { ...small, out: join(dir, 'stopped'), retrievalEvery: 2 },
    { signal: stop.signal, onMessage: (m) => messages.push(m), onStep: (s) => void (s.step === 3 && stop.abort()) },
  )
  t.equal(r.after, null, 'no final score')
  t.equal(r.training.interrupted, true)
  t.equal(r.training.steps, 3)
  t.same(
    r.progress.map((p) => p.step),
    [2],
  )
  t.match(messages.join('\n'), /stopped after step 3 of 6; checkpoint written: continue with --resume/, "the user's stop is announced")
})
