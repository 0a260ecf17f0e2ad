// Translation matching (`simcsepp eval --translation FILE`; sentence-transformers' TranslationEvaluator): each
// direction's share of sentences whose nearest neighbour on the other side is their own translation. Held to vectors
// whose neighbours are known, to a float64 argmax over a model's vectors, and to TranslationEvaluator itself (where the
// CI's Python has sentence-transformers), on pairs whose nearest neighbours are not near ties; refusals.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { evaluateTranslation, readTranslationPairs, SentenceEncoder } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import { bitextScores } from '../lib/eval/translation.js'
import { cli, microModel, needsCli, tempDir, WORDS } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-translation-')

t.test('each direction counts the sentences whose nearest neighbour is their translation', async (t) => {
  // Unit vectors on axes: source i is axis i; the targets are axes 0, 1, 3, 2 (pairs 2 and 3 crossed) and 1 again,
  // so source 4 (axis 4) finds nothing closer than target 0 (every other cosine is 0: the lower index wins ties).
  const axis = (k: number) => Float32Array.from({ length: 6 }, (_, i) => (i === k ? 1 : 0))
  const vectors: Record<string, Float32Array> = { s0: axis(0), s1: axis(1), s2: axis(2), s3: axis(3), s4: axis(4) }
  Object.assign(vectors, { t0: axis(0), t1: axis(1), t2: axis(3), t3: axis(2), t4: axis(1) })
  const embed = async (texts: string[]) => texts.map((x) => vectors[x])
  const r = await evaluateTranslation(embed, { file: 'f', source: ['s0', 's1', 's2', 's3', 's4'], target: ['t0', 't1', 't2', 't3', 't4'] })
  // MTEB's bitext scores of the forward matches [0, 1, 3, 2, 0]: target 0 is predicted twice (once rightly: precision
  // 1/2, F1 2/3), target 1 once (1, 1), targets 2-4 never rightly: precision (1/2 + 1) / 5, F1 (2/3 + 1) / 5.
  t.same(r, { file: 'f', pairs: 5, sourceToTarget: 2 / 5, targetToSource: 2 / 5, accuracy: 2 / 5, precision: 1.5 / 5, f1: (2 / 3 + 1) / 5 })
})

t.test('bitext scores: scikit-learn’s weighted precision, recall and F1 by their definitions', async (t) => {
  let seed = 3
  const rnd = (k: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % k
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + rnd(12)
    // Mostly right, some wrong, some targets predicted several times.
    const predicted = Array.from({ length: n }, (_, i) => (rnd(3) === 0 ? rnd(n) : i))
    // Per label (the gold rows; every prediction is one of them): TP, FP, FN; weights the supports (1 each).
    let [p, r, f] = [0, 0, 0]
    for (let j = 0; j < n; j++) {
      const tp = predicted[j] === j ? 1 : 0
      const fp = predicted.filter((x, i) => x === j && i !== j).length
      const fn = 1 - tp
      const pj = tp + fp === 0 ? 0 : tp / (tp + fp)
      const rj = tp / (tp + fn)
      p += pj
      r += rj
      f += pj + rj === 0 ? 0 : (2 * pj * rj) / (pj + rj)
    }
    const got = bitextScores(predicted)
    const close = [got.precision - p / n, got.recall - r / n, got.f1 - f / n].every((d) => Math.abs(d) < 1e-12)
    if (!close) t.fail(`${JSON.stringify(predicted)}: ${JSON.stringify(got)} vs ${[p / n, r / n, f / n]}`)
  }
  t.pass('200 prediction lists agree')
})

t.test('a model: a float64 argmax over its vectors, and sentence-transformers’ TranslationEvaluator', async (t) => {
  // Sentences and "translations" sharing most of their words, so the model finds some and misses some.
  let seed = 5
  const rnd = (k: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % k
  const words = (n: number) => Array.from({ length: n }, () => WORDS[rnd(WORDS.length)])
  const rows: string[][] = []
  const seen = new Set<string>()
  while (rows.length < 40) {
    const a = words(5)
    const row = [a.join(' '), [...a.slice(0, 3), ...words(2)].reverse().join(' ')]
    if (!seen.has(row[0]) && !seen.has(row[1])) rows.push(row) // no sentence twice: two equal vectors would tie
    row.forEach((x) => seen.add(x))
  }
  const file = join(dir, 'pairs.csv')
  writeFileSync(file, ['english,non_english', ...rows.map((r) => r.join(','))].join('\n') + '\n')
  // A micro model trained a few steps on them, saved with its sentence-transformers files (mean pooling, 40 tokens,
  // so nothing is cut): sentence-transformers loads it as SentenceEncoder does.
  const text = join(dir, 'sentences.txt')
  writeFileSync(text, rows.flat().join('\n') + '\n')
  const model = join(dir, 'model')
  await train({
    model: await microModel(dir, 'micro'),
    data: text,
    pooling: 'mean',
    maxLen: 40,
    steps: 3,
    lr: 1e-3,
    batchSize: 16,
    evalEvery: 0,
    saveEvery: 0,
    out: model,
  })
  const pairs = await readTranslationPairs(file)
  t.same([pairs.source, pairs.target], [rows.map((r) => r[0]), rows.map((r) => r[1])])

  const encoder = await SentenceEncoder.load(model, { device: 'cpu', precision: 'fp32' })
  const [src, tgt] = [(await encoder.encode(pairs.source)) as Float32Array[], (await encoder.encode(pairs.target)) as Float32Array[]]
  const r = await evaluateTranslation((s) => encoder.encode(s) as Promise<Float32Array[]>, pairs)
  await encoder.close()
  // float64: cosines, argmax (first maximum), and the smallest gap between a row's best two.
  const cos = (x: Float32Array, y: Float32Array) => {
    let d = 0,
      p = 0,
      q = 0
    for (let i = 0; i < x.length; i++) [d, p, q] = [d + x[i] * y[i], p + x[i] * x[i], q + y[i] * y[i]]
    return d / Math.sqrt(p * q)
  }
  let gap = Infinity
  const share = (from: Float32Array[], to: Float32Array[]) =>
    from.filter((x, i) => {
      const s = to.map((y) => cos(x, y))
      const best = s.indexOf(Math.max(...s))
      const [first, second] = [...s].sort((a, b) => b - a)
      gap = Math.min(gap, first - second)
      return best === i
    }).length / from.length
  const want = [share(src, tgt), share(tgt, src)]
  t.ok(gap > 1e-5, `no near ties (the smallest gap between a row's two nearest: ${gap.toExponential(2)})`)
  t.same([r.sourceToTarget, r.targetToSource], want, `src->tgt ${want[0]}, tgt->src ${want[1]}`)
  t.ok(want[0] > 0 && want[0] < 1, 'some found, some not')

  const python = process.env.SIMCSEPP_PYTHON || 'python3'
  const script = [
    'import csv, json, sys',
    'from sentence_transformers import SentenceTransformer',
    'from sentence_transformers.evaluation import TranslationEvaluator',
    'rows = list(csv.reader(open(sys.argv[2])))[1:]',
    "ev = TranslationEvaluator([r[0] for r in rows], [r[1] for r in rows], name='t')",
    "print(json.dumps(ev(SentenceTransformer(sys.argv[1], device='cpu'))))",
  ].join('\n')
  const st = spawnSync(python, ['-c', script, model, file], { encoding: 'utf8' })
  if (st.status !== 0) {
    t.comment(`sentence-transformers skipped: ${python} cannot run it (${st.stderr.trim().split('\n').at(-1)})`)
    return
  }
  const theirs = JSON.parse(st.stdout.trim().split('\n').at(-1)!)
  t.same(
    [theirs.t_src2trg_accuracy, theirs.t_trg2src_accuracy, theirs.t_mean_accuracy],
    [r.sourceToTarget, r.targetToSource, r.accuracy],
    "sentence-transformers' TranslationEvaluator: the same accuracies",
  )
})

t.test('simcsepp eval --translation: a table, JSON, refusals', needsCli, async (t) => {
  const model = join(dir, 'model')
  const run = (args: string[]) => spawnSync(process.execPath, [cli, 'eval', '--model', model, ...args], { encoding: 'utf8' })
  const table = run(['--translation', join(dir, 'pairs.csv')])
  t.equal(table.status, 0, table.stderr)
  t.match(
    table.stdout,
    /translation pairs +pairs +src->tgt +tgt->src +accuracy +F1 \(MTEB\)\n.*\npairs\.csv +40 +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d/,
  )
  const json = JSON.parse(run(['--translation', join(dir, 'pairs.csv'), '--json']).stdout)
  t.match(json, {
    translation: [{ pairs: 40, sourceToTarget: Number, targetToSource: Number, accuracy: Number, f1: Number, precision: Number }],
  })
  const text = join(dir, 'lines.txt')
  writeFileSync(text, 'a b\nc d\n')
  t.match(run(['--translation', text]).stderr, /lines\.txt: translation pairs need two named columns/)
  const triplets = join(dir, 'triplets.csv')
  writeFileSync(triplets, 'anchor,positive,negative\na,b,c\n')
  t.match(
    run(['--translation', triplets]).stderr,
    /triplets\.csv: translation pairs have two columns \(a sentence, its translation\); this file has 3/,
  )
})

t.test('simcsepp eval --translation on folders: a split (--split), a multilingual dataset by subset', needsCli, async (t) => {
  const model = join(dir, 'model')
  const run = (args: string[], m = model) => spawnSync(process.execPath, [cli, 'eval', '--model', m, ...args], { encoding: 'utf8' })
  const rows = readFileSync(join(dir, 'pairs.csv'), 'utf8').trim().split('\n').slice(1)
  const jsonl = (part: string[]) =>
    part.map((r) => JSON.stringify({ sentence1: r.split(',')[0], sentence2: r.split(',')[1] })).join('\n') + '\n'
  // MTEB's layout of a multilingual bitext dataset (Tatoeba's deu-eng, ...): a folder per language pair.
  const multi = join(dir, 'tatoeba')
  for (const [i, pair] of ['deu-eng', 'fra-eng'].entries()) {
    mkdirSync(join(multi, pair), { recursive: true })
    writeFileSync(join(multi, pair, 'test.jsonl'), jsonl(rows.slice(20 * i, 20 * i + 20)))
  }
  const splits = join(dir, 'flores')
  mkdirSync(splits, { recursive: true })
  writeFileSync(join(splits, 'test.jsonl'), jsonl(rows.slice(0, 20)))
  writeFileSync(join(splits, 'dev.jsonl'), jsonl(rows.slice(20)))
  const json = (args: string[]) => {
    const r = run([...args, '--json'])
    t.equal(r.status, 0, r.stderr)
    return JSON.parse(r.stdout) as { translation: Record<string, unknown>[]; mean?: Record<string, number> }
  }
  const scores = ({ pairs, sourceToTarget, targetToSource, accuracy, f1, precision }: Record<string, unknown>) => ({
    pairs,
    sourceToTarget,
    targetToSource,
    accuracy,
    f1,
    precision,
  })
  const deu = json(['--translation', join(multi, 'deu-eng', 'test.jsonl')]).translation[0]
  const fra = json(['--translation', join(multi, 'fra-eng', 'test.jsonl')]).translation[0]
  const both = json(['--translation', multi, '--translation', join(dir, 'pairs.csv')])
  t.same(
    both.translation.slice(0, 2).map((x) => [x.file, x.subset, scores(x)]),
    [
      [multi, 'deu-eng', scores(deu)],
      [multi, 'fra-eng', scores(fra)],
    ],
    "each subset scored as its file, named by the dataset's folder and the subset",
  )
  t.not(deu.f1, fra.f1, 'the subsets differ')
  // MTEB's means: the multilingual dataset once, by its subsets' mean F1.
  const datasetF1 = ((deu.f1 as number) + (fra.f1 as number)) / 2
  const want = (datasetF1 + (both.translation[2].f1 as number)) / 2
  t.equal(both.mean!.datasets, 2)
  t.ok(Math.abs(both.mean!.mean - want) < 1e-12, `Mean (Task) ${both.mean!.mean}: the dataset once`)
  const table = run(['--translation', multi])
  t.equal(table.status, 0, table.stderr)
  t.match(table.stdout, /\ntatoeba\/deu-eng +20 .*\ntatoeba\/fra-eng +20 /, 'the rows by dataset and subset')
  t.match(table.stdout, new RegExp(`\\ntatoeba +bitext mining +2 +F1 +${(100 * datasetF1).toFixed(2)}\\n`), 'the subsets’ mean')
  // A folder of splits: its --split's file.
  t.same(scores(json(['--translation', splits]).translation[0]), scores(deu), 'test (the default): the first 20 pairs')
  const dev = json(['--translation', splits, '--split', 'dev']).translation[0]
  t.same(scores(dev), scores(fra), 'dev: the last 20')
  t.equal(dev.file, splits, 'named by the folder')
  // The card: a result per subset, the subset as its config, with the split scored.
  const carded = join(dir, 'carded')
  cpSync(model, carded, { recursive: true })
  const r = run(['--translation', multi, '--update-card'], carded)
  t.equal(r.status, 0, r.stderr)
  const card = readFileSync(join(carded, 'README.md'), 'utf8')
  t.match(card, /name: "tatoeba"\n +type: "tatoeba"\n +split: "test"\n +config: "deu-eng"/)
  t.match(card, /config: "fra-eng"/)
})
