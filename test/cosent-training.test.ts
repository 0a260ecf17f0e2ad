// Training on scored pairs with CoSENT (`--objective cosent`; sentence-transformers' CoSENTLoss on STS-B-style
// data: sentence1, sentence2, score): the scores reach the loss with their pairs (a run ranks its training pairs
// better by their scores than the model did before), in micro-batches as whole, on emulated CUDA with step graphs
// (the scores a bound array, new every replay) as on the CPU; refusals name the file, the line and the fix.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaStatus } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import type { EvalInfo, StepInfo } from '../lib/train/events.js'
import { checkCudaMatchesCpu } from './helpers/cuda-vs-cpu.js'
import { checkMicroBatches } from './helpers/supervised-step.js'
import { tempDir, TINY_RUN, WORDS } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-cosent-')
let seed = 7
const rnd = (k: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % k
// Two topics: the vocabulary's halves. A pair scores 5 when both sentences come from one topic, 0 across topics. Words
// shared by chance within a topic let the random model rank them partly (Spearman 69); training takes it to 87.
const topic = (k: number) => WORDS.filter((_, i) => i % 2 === k)
const words = (k: number, n: number) => Array.from({ length: n }, () => topic(k)[rnd(topic(k).length)])
const pairs = Array.from({ length: 48 }, (_, i) => {
  const [ka, kb] = [i % 2, (i >> 1) % 2]
  return { a: words(ka, 5).join(' '), b: words(kb, 5).join(' '), score: ka === kb ? 5 : 0 }
})
const data = join(dir, 'stsb-train.csv')
writeFileSync(data, ['sentence1,sentence2,score', ...pairs.map((p) => `${p.a},${p.b},${p.score}`)].join('\n') + '\n')
// The same pairs as an STS-B evaluation file (genre, file, year, id, score, sentence1, sentence2).
const sts = join(dir, 'sts.tsv')
writeFileSync(sts, pairs.map((p, i) => ['main', 'x', '2024', String(i), String(p.score), p.a, p.b].join('\t')).join('\n') + '\n')

t.test('a CoSENT run ranks its pairs by their scores better than before, and says what it trained', async (t) => {
  const out = join(dir, 'run')
  const messages: string[] = []
  const steps: StepInfo[] = []
  // On the CPU: the CUDA path has its own checks below, and 60 steps on the host emulator (where 'auto' picks it)
  // took 7 minutes of CI.
  const r = await train(
    { ...TINY_RUN, device: 'cpu', data, out, objective: 'cosent', steps: 60, lr: 5e-4, evalFiles: [sts], evalEvery: 60, saveEvery: 0 },
    { onMessage: (m) => void messages.push(m), onStep: (s) => void steps.push(s) },
  )
  t.match(
    messages.join('\n'),
    /stsb-train\.csv: 48 scored pairs \(anchor, positive, score\), read as csv: CoSENT over the order of the scores/,
  )
  t.ok(
    steps.every((s) => Object.keys(s.parts).join() === 'cosent' && s.parts.cosent === s.loss && Number.isFinite(s.loss)),
    'each step logs its cosent loss',
  )
  const evals = r.history.filter((e): e is EvalInfo => e.type === 'eval')
  const [before, after] = [evals[0].spearman!, evals[evals.length - 1].spearman!]
  t.equal(evals[0].step, 0)
  t.ok(after > before + 10, `Spearman x100 on the training pairs: ${before.toFixed(1)} before, ${after.toFixed(1)} after`)
  const args = JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8'))
  t.match(args, { objective: 'cosent', batchSampler: 'random' }, 'recorded; scored pairs are batched in shuffled order')
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /CoSENT over scored pairs/)
  t.match(card, /48 scored pairs/)
})

t.test('--objective angle trains AnglE over the same pairs, and says so', async (t) => {
  const out = join(dir, 'angle')
  const messages: string[] = []
  const steps: StepInfo[] = []
  await train(
    { ...TINY_RUN, data, out, objective: 'angle', steps: 4 },
    { onMessage: (m) => void messages.push(m), onStep: (s) => void steps.push(s) },
  )
  t.match(messages.join('\n'), /48 scored pairs \(anchor, positive, score\), read as csv: AnglE over the order of the scores/)
  t.ok(
    steps.every((s) => Object.keys(s.parts).join() === 'angle' && Number.isFinite(s.loss)),
    'each step logs its angle loss',
  )
  t.match(readFileSync(join(out, 'README.md'), 'utf8'), /AnglE over scored pairs/)
})

t.test('CoSENT in micro-batches computes the whole batch’s step', async (t) => {
  const n = 12
  const columns = [pairs.slice(0, n).map((p) => p.a), pairs.slice(0, n).map((p) => p.b)]
  await checkMicroBatches(
    t,
    dir,
    columns,
    [5, 24],
    Float32Array.from(pairs.slice(0, n), (p) => p.score),
  )
})

t.test('refusals: where scores are missing, malformed or not pairs', async (t) => {
  const out = join(dir, 'refused')
  const write = (name: string, text: string) => {
    const p = join(dir, name)
    writeFileSync(p, text)
    return p
  }
  const run = (d: string, extra = {}) => train({ ...TINY_RUN, data: d, out, objective: 'cosent', ...extra })
  await t.rejects(
    run(write('plain.txt', 'a b c\nd e f\n')),
    /objective cosent trains on scored pairs \(sentence1, sentence2, score\); the data holds sentences/,
  )
  await t.rejects(
    run(write('unscored.csv', 'sentence1,sentence2\na b,c d\ne f,g h\n')),
    /unscored\.csv: line 1: scored pairs need a score column \(score or label\) beside the two sentences \(found sentence1, sentence2\)/,
  )
  await t.rejects(
    run(write('bad.csv', 'sentence1,sentence2,score\na b,c d,4.5\ne f,g h,high\n')),
    /bad\.csv: line 3: the score "high" is not a finite number/,
  )
  await t.rejects(
    run(write('triplets.csv', 'anchor,positive,negative,score\na b,c d,e f,1\ng h,i j,k l,2\n')),
    /scored data must be pairs \(sentence1, sentence2, score\); this file has triplets/,
  )
  await t.rejects(
    run(
      write('scored.jsonl', '{"sentence1": "a b", "sentence2": "c d", "score": 1}\n{"sentence1": "e", "sentence2": "f", "score": null}\n'),
    ),
    /scored\.jsonl: line 2: the score holds no value, which is not a finite number/,
  )
  // sentence-transformers/stsb's columns in Parquet; the fixture's row 4 has no score.
  const stsb = join(process.cwd(), 'test', 'fixtures', 'parquet', 'stsb.parquet')
  await t.rejects(run(stsb), /stsb\.parquet: row 4: the score holds no value, which is not a finite number/)
  await t.rejects(run(data, { symmetric: true }), /train: symmetric applies to supervised pairs\/triplets/)
  await t.rejects(run(data, { objective: 'dcl' }), /train: objective dcl needs one sentence per line/)
  // simcse on scored pairs: every pair a positive, the scores unused, and the log says so.
  const messages: string[] = []
  await train({ ...TINY_RUN, steps: 1, data, out: join(dir, 'simcse') }, { onMessage: (m) => void messages.push(m) })
  t.match(
    messages.join('\n'),
    /stsb-train\.csv: its score column is not used: objective simcse takes every pair as a positive \(--objective cosent or angle trains on the scores\)/,
  )
})

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

for (const objective of ['cosent', 'angle'] as const)
  t.test(
    `a ${objective} run on CUDA (fp32, graphs replayed with each step’s scores) ends with the CPU losses and weights`,
    { skip },
    async (t) => {
      await checkCudaMatchesCpu(t, { ...TINY_RUN, data, objective, steps: 5, saveEvery: 0, lr: 1e-4 }, dir, objective)
    },
  )
