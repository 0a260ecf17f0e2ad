// Distillation's evaluation (train()'s evalMse, `--eval-mse`; sentence-transformers' MSEEvaluator): at every
// evaluation, the mean squared difference between the teacher's vectors of a set's sources and the model's of its
// targets (parallel pairs, or single sentences against themselves), as SentenceEncoder gives both; selectBy 'mse'
// keeps the model of the least MSE; the log, TensorBoard, card and screen say it as sentence-transformers does
// (negative_mse = -100 × MSE); the means leave it out; refusals.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { modelVectors, saveTinyModel } from './helpers/encoder-tiny-model.js'
import { evaluateMse, readMseSentences } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import { scalarsOf } from '../lib/train/tensorboard.js'
import type { EvalInfo } from '../lib/train/events.js'
import { frontMatterOf } from './helpers/yaml.js'
import { cli, microModel, needsCli, runCli, tempDir, writeSentences, writeStsFile } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-train-mse-')
const text = writeSentences(join(dir, 'text.txt'), 24)
// Held-out sentences (not trained on) and their "translations": the words reversed.
const heldOut = writeSentences(join(dir, 'held-out.txt'), 16)
const held = readFileSync(heldOut, 'utf8').trim().split('\n')
const pairs = join(dir, 'pairs.csv')
writeFileSync(pairs, ['english,non_english', ...held.map((s) => `${s},${s.split(' ').reverse().join(' ')}`)].join('\n') + '\n')
const micro = await microModel(dir, 'micro')
const base = { model: micro, device: 'cpu' as const, pooling: 'cls' as const, batchSize: 8, maxLen: 12, saveEvery: 0, seed: 1 }
const teacher = join(dir, 'teacher')
await train({ ...base, data: text, steps: 6, lr: 1e-3, evalEvery: 0, out: teacher })

const vectors = modelVectors

/** The mean over every value of (student_i − teacher_i)², in float64. */
function mse(student: Float32Array[], teacherRows: Float32Array[]): number {
  let sum = 0,
    count = 0
  student.forEach((v, i) => v.forEach((x, c) => ((sum += (x - teacherRows[i][c]) ** 2), count++)))
  return sum / count
}

t.test('evaluateMse and readMseSentences', async (t) => {
  const set = { file: 'x', source: ['a', 'b'], target: ['c', 'd'] }
  const student = async (texts: string[]) => texts.map((s) => Float32Array.from([s.charCodeAt(0), 1, -2]))
  const teacherRows = Float32Array.from([100, 0, 0, 98, 3, -2])
  // (99 - 100)² + 1² + 2², (100 - 98)² + 2² + 0²: 6 + 8 over 6 values
  t.same(await evaluateMse(student, teacherRows, set), { file: 'x', sentences: 2, mse: 14 / 6 })
  await t.rejects(evaluateMse(student, Float32Array.from([1, 2, 3, 4]), set), /the teacher's vectors have 2 values, the model's 3/)

  const fromText = await readMseSentences(heldOut)
  t.same(fromText.source, held, 'a text file: one sentence a line')
  t.equal(fromText.target, fromText.source, 'each its own target')
  const fromPairs = await readMseSentences(pairs)
  t.same([fromPairs.source[0], fromPairs.target[0]], [held[0], held[0].split(' ').reverse().join(' ')], 'pairs: the two columns')
  const blank = join(dir, 'blank.txt')
  writeFileSync(blank, '\n\n')
  await t.rejects(readMseSentences(blank), /blank\.txt: no sentences/)
})

t.test('evalMse: the MSE from the teacher at each evaluation, the least one selecting; the numbers are the saved model’s', async (t) => {
  const out = join(dir, 'out')
  const evals: EvalInfo[] = []
  const messages: string[] = []
  const result = await train(
    {
      ...base,
      data: text,
      objective: 'distill',
      teacher,
      steps: 4,
      evalEvery: 2,
      lr: 3e-3,
      tensorboard: true,
      evalMse: [pairs, heldOut],
      out,
    },
    { onEval: (e) => void evals.push(e), onMessage: (m) => void messages.push(m) },
  )
  t.ok(
    messages.some((m) => m.includes(`${pairs}: distillation, 16 parallel pairs, MSE from the teacher`)),
    'says what it scores (pairs)',
  )
  t.ok(
    messages.some((m) => m.includes(`${heldOut}: distillation, 16 sentences, MSE from the teacher`)),
    'says what it scores (text)',
  )
  t.equal(evals.length, 3, 'steps 0, 2, 4')
  for (const e of evals) {
    t.match(e.mse, [
      { file: pairs, sentences: 16 },
      { file: heldOut, sentences: 16 },
    ])
    t.same(e.selection, { set: 'pairs.csv', metric: 'negativeMse', score: -e.mse![0].mse }, 'selected by the first set (the default kind)')
    const tags = Object.fromEntries(scalarsOf(e))
    t.same(
      [tags['eval/pairs.csv/negative_mse'], tags['eval/held-out.txt/negative_mse']],
      [-100 * e.mse![0].mse, -100 * e.mse![1].mse],
      'TensorBoard: negative_mse',
    )
  }
  // The untrained model's numbers: SentenceEncoder's vectors of the targets against the teacher's of the sources.
  const teacherHeld = await vectors(teacher, held)
  const reversed = held.map((s) => s.split(' ').reverse().join(' '))
  const untrained = [
    mse(await vectors(micro, reversed, { pooling: 'cls', maxLength: 12 }), teacherHeld),
    mse(await vectors(micro, held, { pooling: 'cls', maxLength: 12 }), teacherHeld),
  ]
  for (const i of [0, 1])
    t.ok(Math.abs(evals[0].mse![i].mse - untrained[i]) < 1e-6 * untrained[i], `step 0, set ${i}: ${evals[0].mse![i].mse} ≈ ${untrained[i]}`)
  t.ok(evals[2].mse![1].mse < evals[0].mse![1].mse, `training brings the held-out sentences closer: ${evals.map((e) => e.mse![1].mse)}`)

  const best = evals.filter((e) => e.best).at(-1)!
  t.same(result.best, { step: best.step, negativeMse: -best.mse![0].mse }, 'the best: the least MSE of the first set')
  for (const e of evals) t.ok(e.mse![0].mse >= best.mse![0].mse, `step ${e.step} is not better than the best`)
  const saved = mse(await vectors(out, reversed), teacherHeld)
  t.ok(Math.abs(saved - best.mse![0].mse) < 1e-6 * saved, `the saved model: ${saved}, logged ${best.mse![0].mse}`)

  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, '| pairs.csv negative MSE | held-out.txt negative MSE |')
  t.match(card, `| ${(-100 * best.mse![0].mse).toFixed(2)} |`)
  const meta = frontMatterOf(card) as {
    'model-index': { results: { task: { type: string }; dataset: { name: string }; metrics: { type: string; value: number }[] }[] }[]
  } | null
  if (meta) {
    const kd = meta['model-index'][0].results.filter((r) => r.task.type === 'knowledge-distillation')
    t.same(
      kd.map((r) => [r.dataset.name, r.metrics.map((m) => [m.type, m.value])]),
      [
        ['pairs.csv', [['negative_mse', -100 * best.mse![0].mse]]],
        ['held-out.txt', [['negative_mse', -100 * best.mse![1].mse]]],
      ],
      "the model-index: sentence-transformers' knowledge-distillation task",
    )
  }
  t.match(readFileSync(join(out, 'run', 'loss_curve.svg'), 'utf8'), /pairs\.csv negative MSE/, 'the plot shows the selecting score')
})

t.test('evalMse: beside other sets, outside the means; refusals', async (t) => {
  const sts = writeStsFile(join(dir, 'sts.tsv'))
  const run = { ...base, data: text, objective: 'distill' as const, teacher, steps: 1, evalEvery: 1 }
  const evals: EvalInfo[] = []
  await train(
    { ...run, out: join(dir, 'mean'), evalFiles: [sts], evalMse: [heldOut], selectBy: 'mean' },
    { onEval: (e) => void evals.push(e) },
  )
  for (const e of evals) {
    t.equal(e.mse?.length, 1, 'scored')
    t.same(e.selection, { set: '1 set', metric: 'mean', score: e.results[0].spearman / 100 }, 'the mean: the STS file alone')
  }
  await t.rejects(train({ ...run, out: join(dir, 'm2'), evalMse: [heldOut], selectBy: 'mean' }), /selectBy mean needs evaluation sets/)
  await t.rejects(
    train({ ...base, data: text, steps: 1, evalEvery: 1, out: join(dir, 'm3'), evalMse: [heldOut] }),
    /evalMse measures the model against distill's teacher: it applies to objective distill/,
  )
  await t.rejects(train({ ...run, out: join(dir, 'm4'), evalFiles: [sts], selectBy: 'mse' }), /selectBy mse needs evalMse/)
})

t.test('simcsepp train --eval-mse', needsCli, async (t) => {
  const out = join(dir, 'cli')
  const r = runCli([
    'train',
    ...['--model', micro, '--data', text, '--objective', 'distill', '--teacher', teacher, '--pooling', 'cls', '--max-len', '12'],
    ...['--batch-size', '8', '--steps', '2', '--eval-every', '2', '--save-every', '0', '--device', 'cpu', '--eval-mse', heldOut],
    ...['--out', out],
  ])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stderr, /step 2: held-out\.txt negative MSE -\d+\.\d\d/, 'each evaluation on screen: -100 × MSE')
  t.match(r.stderr, /best negative MSE -\d+\.\d\d at step \d/, 'the summary')
  const evals = readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as EvalInfo)
    .filter((e) => e.type === 'eval')
  t.same(
    evals.map((e) => [e.step, Object.keys(e.mse![0]).sort()]),
    [
      [0, ['file', 'mse', 'sentences']],
      [2, ['file', 'mse', 'sentences']],
    ],
  )
})

t.test('simcsepp eval --mse --teacher: the same numbers as training logs; the card; refusals', needsCli, async (t) => {
  // The model that the evaluation test above trained and saved (its best step's MSE in its log).
  const model = join(dir, 'out')
  const run = (args: string[]) => spawnSync(process.execPath, [cli, 'eval', ...args], { encoding: 'utf8' })
  const r = run(['--model', model, '--mse', pairs, '--mse', heldOut, '--teacher', teacher, '--json'])
  t.equal(r.status, 0, r.stderr)
  const got = (JSON.parse(r.stdout) as { mse: { file: string; sentences: number; mse: number }[] }).mse
  const teacherHeld = await vectors(teacher, held)
  const reversed = held.map((s) => s.split(' ').reverse().join(' '))
  const want = [mse(await vectors(model, reversed), teacherHeld), mse(await vectors(model, held), teacherHeld)]
  t.same(
    got.map((x) => [x.file, x.sentences]),
    [
      [pairs, 16],
      [heldOut, 16],
    ],
  )
  for (const i of [0, 1]) t.ok(Math.abs(got[i].mse - want[i]) < 1e-6 * want[i], `set ${i}: ${got[i].mse} ≈ ${want[i]}`)
  const logged = readFileSync(join(model, 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as EvalInfo)
    .filter((e) => e.type === 'eval' && e.best)
    .at(-1)!
  t.ok(Math.abs(logged.mse![0].mse - got[0].mse) < 1e-6 * got[0].mse, 'the best evaluation’s logged MSE')

  const table = run(['--model', model, '--mse', heldOut, '--teacher', teacher])
  t.equal(table.status, 0, table.stderr)
  t.match(table.stdout, 'distillation sentences')
  t.match(table.stdout, new RegExp(`held-out\\.txt +16 +${(100 * got[1].mse).toFixed(4)} +-${(100 * got[1].mse).toFixed(4)}\\n`))

  const card = run(['--model', model, '--mse', heldOut, '--teacher', teacher, '--update-card'])
  t.equal(card.status, 0, card.stderr)
  const meta = frontMatterOf(readFileSync(join(model, 'README.md'), 'utf8')) as {
    'model-index': { results: { task: { type: string }; dataset: { name: string }; metrics: { type: string; value: number }[] }[] }[]
  } | null
  if (meta) {
    const kd = meta['model-index'][0].results.filter((x) => x.task.type === 'knowledge-distillation' && x.dataset.name === 'held-out.txt')
    t.equal(kd.length, 1, 'one result for the file (training’s replaced)')
    t.ok(Math.abs(kd[0].metrics[0].value - -100 * got[1].mse) < 1e-9, 'negative_mse: -100 × MSE')
  }

  const refused = (args: string[], message: RegExp) => {
    const x = run(['--model', model, ...args])
    t.equal(x.status, 2, args.join(' '))
    t.match(x.stderr, message)
  }
  refused(['--mse', heldOut], /--mse measures the model against a teacher: give --teacher DIR/)
  refused(['--sts', heldOut, '--teacher', teacher], /--teacher applies to --mse/)
  refused(['--mse', heldOut, '--teacher', teacher, '--matryoshka-dims', '8'], /give --matryoshka-dims or --mse, not both/)
  const narrow = await saveTinyModel({ dir: join(dir, 'narrow') }) // (32 wide; the model 48)
  const wide = run(['--model', model, '--mse', heldOut, '--teacher', narrow])
  t.not(wide.status, 0)
  t.match(wide.stderr, /the teacher's vectors have 32 values, the model's 48: they must be as wide: a student distilled from a wider/)
})
