// Distillation (`--objective distill --teacher DIR`; sentence-transformers' MSELoss): the student's pooled vectors
// (not the MLP head's) taught the teacher's vectors of each batch's sentences, or, for parallel pairs, both
// sentences taught the teacher's vector of the first. Held here: a step's loss is the mean squared error between the
// student's vectors (as SentenceEncoder computes them, without dropout) and the teacher's; training brings them
// closer; the run resumes bit for bit; it mixes with other datasets; refusals; emulated CUDA against the CPU.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaStatus } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import type { StepInfo } from '../lib/train/events.js'
import { principalComponents } from '../lib/train/pca.js'
import { checkCudaMatchesCpu } from './helpers/cuda-vs-cpu.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'
import { modelVectors } from './helpers/encoder-tiny-model.js'

const dir = tempDir('simcsepp-distill-')
const text = writeSentences(join(dir, 'text.txt'), 24)
const sentences = readFileSync(text, 'utf8').trim().split('\n')
// Parallel pairs: each sentence with its words reversed, as a stand-in for a translation.
const pairs = join(dir, 'pairs.csv')
writeFileSync(
  pairs,
  ['anchor,positive', ...sentences.slice(0, 12).map((s) => `${s},${s.split(' ').reverse().join(' ')}`)].join('\n') + '\n',
)
const micro = await microModel(dir, 'micro')
const base = {
  model: micro,
  device: 'cpu' as const,
  pooling: 'cls' as const,
  batchSize: 8,
  maxLen: 12,
  evalEvery: 0,
  saveEvery: 0,
  seed: 1,
}
// The teacher: the micro model moved by a few steps of SimCSE++ (so the student starts away from it).
const teacher = join(dir, 'teacher')
await train({ ...base, data: text, steps: 6, lr: 1e-3, out: teacher })

const vectors = modelVectors

/** The mean over every value of (student − teacher)², rows paired by `target(i)`. */
function mse(student: Float32Array[], targets: Float32Array[], target: (i: number) => number): number {
  let sum = 0,
    count = 0
  student.forEach((v, i) =>
    v.forEach((x, c) => {
      sum += (x - targets[target(i)][c]) ** 2
      count++
    }),
  )
  return sum / count
}

t.test("a step's loss is the mean squared error of the student's pooled vectors against the teacher's", async (t) => {
  // No dropout and the whole data in one batch: the step sees what SentenceEncoder computes (the mean does not depend
  // on the batch's order).
  const steps: StepInfo[] = []
  const messages: string[] = []
  const one = { ...base, data: text, objective: 'distill' as const, teacher, dropout: 0, batchSize: 24, steps: 1 }
  await train({ ...one, out: join(dir, 'one-step') }, { onStep: (s) => void steps.push(s), onMessage: (m) => void messages.push(m) })
  const want = mse(await vectors(micro, sentences, { pooling: 'cls', maxLength: 12 }), await vectors(teacher, sentences), (i) => i)
  t.ok(Math.abs(steps[0].loss - want) < 1e-9 * want, `step 1: ${steps[0].loss}; SentenceEncoder's vectors: ${want}`)
  t.same(Object.keys(steps[0].parts), ['distill'])
  t.ok(Number.isNaN(steps[0].alignment), 'one view: no alignment between views')
  t.match(messages.join('\n'), /teacher: .*teacher \(48 dimensions, on cpu\): each batch's distillation targets/)

  // Parallel pairs: both sentences of pair i taught the teacher's vector of its first.
  const parallel: StepInfo[] = []
  await train({ ...one, data: pairs, batchSize: 12, out: join(dir, 'one-step-pairs') }, { onStep: (s) => void parallel.push(s) })
  const rows = readFileSync(pairs, 'utf8').trim().split('\n').slice(1)
  const [a, p] = [0, 1].map((c) => rows.map((r) => r.split(',')[c]))
  const student = await vectors(micro, [...a, ...p], { pooling: 'cls', maxLength: 12 })
  const wantPairs = mse(student, await vectors(teacher, a), (i) => i % 12)
  t.ok(Math.abs(parallel[0].loss - wantPairs) < 1e-9 * wantPairs, `pairs, step 1: ${parallel[0].loss}; expected ${wantPairs}`)
  t.ok(Number.isFinite(parallel[0].alignment), 'two views: their alignment')
})

t.test("a wider teacher: its vectors projected onto its principal components over the data, the student's width", async (t) => {
  // A 128-wide teacher (the tiny config, a few steps from scratch) for the 48-wide micro student; 80 sentences, all in
  // the projection's sample and in one batch, no dropout: step 1's loss is the mean squared error against the teacher's
  // vectors times the components that principalComponents gives for them.
  const many = writeSentences(join(dir, 'many.txt'), 80)
  const lines = readFileSync(many, 'utf8').trim().split('\n')
  const { model: _, ...fromScratch } = base
  const wide = join(dir, 'wide-teacher')
  await train({ ...fromScratch, config: 'tiny', data: many, steps: 3, lr: 1e-3, out: wide })
  const steps: StepInfo[] = []
  const messages: string[] = []
  const run = { ...base, data: many, objective: 'distill' as const, teacher: wide, dropout: 0, batchSize: 80, steps: 1 }
  await train({ ...run, out: join(dir, 'narrow') }, { onStep: (s) => void steps.push(s), onMessage: (m) => void messages.push(m) })
  t.match(
    messages.join('\n'),
    /teacher: .*wide-teacher \(128 dimensions, on cpu\), projected onto its first 48 principal components over 80 training sentences/,
  )
  const teacherVectors = await vectors(wide, lines)
  const flat = new Float32Array(80 * 128)
  teacherVectors.forEach((v, i) => flat.set(v, i * 128))
  const components = principalComponents(flat, 80, 128, 48)
  const targets = teacherVectors.map((v) =>
    Float32Array.from({ length: 48 }, (_, c) => v.reduce((s, x, j) => s + x * components[c * 128 + j], 0)),
  )
  const want = mse(await vectors(micro, lines, { pooling: 'cls', maxLength: 12 }), targets, (i) => i)
  t.ok(Math.abs(steps[0].loss - want) < 1e-6 * want, `step 1: ${steps[0].loss}; against the projected vectors: ${want}`)
  t.match(
    readFileSync(join(dir, 'narrow', 'README.md'), 'utf8'),
    /\| teacher projected onto \| its first 48 principal components \(of 128 dimensions, over 80 training sentences\) \|/,
    'the model card says how the targets were made',
  )
  // Too few sentences for 48 components.
  await t.rejects(
    train({ ...run, data: text, batchSize: 8, out: join(dir, 'narrow-refused') }),
    /projecting its 128 dimensions onto the model's 48 takes at least 48 training sentences .*the data has 24/,
  )
})

t.test('a run of several epochs computes every target once, before training: the per-step targets', async (t) => {
  // 24 sentences in batches of 8: 3 steps an epoch. One epoch encodes each step's batch; two encode the data up front.
  const run = { ...base, data: text, objective: 'distill' as const, teacher, dropout: 0 }
  const [once, upfront]: StepInfo[][] = [[], []]
  const messages: string[] = []
  await train(
    { ...run, steps: 3, out: join(dir, 'epoch-1') },
    { onStep: (s) => void once.push(s), onMessage: (m) => void messages.push(m) },
  )
  t.notMatch(messages.join('\n'), /computed once/)
  await train(
    { ...run, steps: 6, out: join(dir, 'epoch-2') },
    { onStep: (s) => void upfront.push(s), onMessage: (m) => void messages.push(m) },
  )
  t.match(messages.join('\n'), /teacher: the targets of all 24 distinct sentences computed once \(0\.0 MiB\), read every epoch/)
  // Step 1 (before any update): the same targets but for the rounding of another batch's padding.
  const rel = Math.abs(upfront[0].loss - once[0].loss) / once[0].loss
  t.ok(rel < 1e-6, `step 1: ${upfront[0].loss} (targets up front) vs ${once[0].loss} (per step): ${rel.toExponential(1)} apart`)
})

t.test("training brings the student's vectors to the teacher's, and the card says so", async (t) => {
  const out = join(dir, 'trained')
  await train({ ...base, data: text, objective: 'distill', teacher, steps: 40, lr: 2e-3, out })
  const targets = await vectors(teacher, sentences)
  const before = mse(await vectors(micro, sentences, { pooling: 'cls', maxLength: 12 }), targets, (i) => i)
  const after = mse(await vectors(out, sentences), targets, (i) => i)
  t.ok(after < 0.3 * before, `mean squared error to the teacher: ${before.toExponential(3)} before, ${after.toExponential(3)} after`)
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /distillation: the mean squared error between its vectors and the teacher's \(sentence-transformers' MSELoss\)/)
  t.match(card, /\| teacher \| .*teacher \|/)
  t.match(card, /- Objective: `distill`\n/)
  t.match(JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')), { objective: 'distill', teacher })
})

t.test('interrupted and resumed, a distillation run ends with the uninterrupted weights, bit for bit', async (t) => {
  const run = { ...base, data: text, objective: 'distill' as const, teacher, steps: 4, saveEvery: 1 }
  const whole = join(dir, 'whole')
  await train({ ...run, out: whole })
  const out = join(dir, 'resumed')
  const ctl = new AbortController()
  const first = await train({ ...run, out }, { signal: ctl.signal, onStep: (s) => void (s.step === 2 && ctl.abort()) })
  t.equal(first.interrupted, true)
  await train({ ...run, out, resume: out })
  t.ok(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors'))), 'identical final weights')
  await t.rejects(
    train({ ...run, teacher: micro, out, resume: out }),
    /option teacher was ".*teacher" in the checkpointed run, now ".*micro"/,
  )
})

t.test('a distillation dataset beside a contrastive one: each step its own objective', async (t) => {
  const steps: StepInfo[] = []
  await train(
    {
      ...base,
      data: [text, pairs],
      objective: ['distill', 'simcse'],
      teacher,
      steps: 6,
      datasetSampler: 'round-robin',
      out: join(dir, 'mixed'),
    },
    { onStep: (s) => void steps.push(s) },
  )
  t.same(
    steps.map((s) => Object.keys(s.parts).join()),
    ['distill', 'simcse', 'distill', 'simcse', 'distill', 'simcse'],
  )
})

t.test('refusals name the option', async (t) => {
  const out = join(dir, 'refused')
  await t.rejects(train({ ...base, data: text, objective: 'distill', out }), /train: objective distill needs a teacher/)
  await t.rejects(train({ ...base, data: text, teacher, out }), /train: teacher applies to objective distill/)
  await t.rejects(
    train({ ...base, data: text, objective: 'distill', teacher, matryoshkaDims: [48, 24], out }),
    /matryoshkaDims applies to the contrastive objectives, not to distill/,
  )
  const triplets = join(dir, 'triplets.csv')
  writeFileSync(triplets, 'anchor,positive,negative\na b,c d,e f\ng h,i j,k l\n')
  await t.rejects(
    train({ ...base, data: triplets, objective: 'distill', teacher, out }),
    /objective distill trains on sentences or parallel pairs \(a sentence, its translation\); .*triplets\.csv has 3 columns/,
  )
  const { model: _, ...fromScratch } = base
  await t.rejects(
    train({ ...fromScratch, config: 'tiny', data: text, objective: 'distill', teacher, out }),
    /--teacher .*teacher: its vectors have 48 dimensions, fewer than the model's 128: a student must be at most the teacher's width/,
  )
  await t.rejects(train({ ...base, data: text, objective: 'distill', teacher: join(dir, 'nowhere'), out }), /--teacher .*nowhere: /)
})

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

t.test('on CUDA (fp32, step graphs binding the teacher vectors) distillation ends with the CPU weights', { skip }, async (t) => {
  await checkCudaMatchesCpu(t, { ...base, data: text, objective: 'distill', teacher, steps: 6, lr: 1e-4 }, dir, 'distill')
})
