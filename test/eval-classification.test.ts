// Classification on frozen vectors (`simcsepp eval --classification`; MTEB's classification, SentEval's transfer
// tasks): the logistic regression held to a float64 minimiser of the same objective, the scores to scikit-learn's
// definitions, the protocols (MTEB's draws per label, stratified cross-validation) to what they promise, and the
// readers to the layouts MTEB's datasets come in; refusals name the file and what is missing.
import t from 'tap'
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { join } from 'node:path'
import { fitLogisticRegression, predictClasses } from '../lib/eval/logistic-regression.js'
import {
  evaluateClassification,
  readClassificationSet,
  scores,
  stratifiedFolds,
  type ClassificationSet,
} from '../lib/eval/classification.js'
import { tempDir } from './helpers/train-corpus.js'
import { needsNumpy, numpyJson } from './helpers/numpy.js'

const dir = tempDir('simcsepp-classification-')

/** A seeded generator of uniform numbers in [0, 1) (LCG: the same sequence on every machine). */
function random(seed: number): () => number {
  let s = seed >>> 0
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32
}

/** n rows of `dim` values around one centre per class (overlapping when `spread` is large), labels i % classes. */
function blobs(n: number, dim: number, classes: number, spread: number, seed: number): { x: Float32Array; y: Int32Array } {
  const r = random(seed)
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => 2 * r() - 1))
  const x = new Float32Array(n * dim)
  const y = Int32Array.from({ length: n }, (_, i) => i % classes)
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) x[i * dim + j] = centres[y[i]][j] + spread * (2 * r() - 1)
  return { x, y }
}

/**
 * The same objective minimised in float64 by gradient descent with step 1/L (L bounds the gradient's Lipschitz
 * constant: half the mean squared row norm, plus one for the intercepts, plus the penalty), run to a gradient of 1e-12.
 */
function reference(x: Float32Array, y: Int32Array, classes: number, c: number): { w: Float64Array; b: Float64Array } {
  const n = y.length
  const d = x.length / n
  const penalty = 1 / (c * n)
  let sq = 0
  for (let i = 0; i < x.length; i++) sq += x[i] * x[i]
  const step = 1 / (0.5 * (sq / n + 1) + penalty)
  const w = new Float64Array(classes * d)
  const b = new Float64Array(classes)
  for (let it = 0; it < 200000; it++) {
    const gw = new Float64Array(classes * d)
    const gb = new Float64Array(classes)
    for (let i = 0; i < n; i++) {
      const z = Array.from({ length: classes }, (_, k) => {
        let s = b[k]
        for (let j = 0; j < d; j++) s += w[k * d + j] * x[i * d + j]
        return s
      })
      const m = Math.max(...z)
      const e = z.map((v) => Math.exp(v - m))
      const sum = e.reduce((a, v) => a + v, 0)
      for (let k = 0; k < classes; k++) {
        const dz = (e[k] / sum - (k === y[i] ? 1 : 0)) / n
        for (let j = 0; j < d; j++) gw[k * d + j] += dz * x[i * d + j]
        gb[k] += dz
      }
    }
    let max = 0
    for (let i = 0; i < gw.length; i++) {
      gw[i] += penalty * w[i]
      max = Math.max(max, Math.abs(gw[i]))
    }
    for (const g of gb) max = Math.max(max, Math.abs(g))
    if (max < 1e-12) break
    for (let i = 0; i < w.length; i++) w[i] -= step * gw[i]
    for (let k = 0; k < classes; k++) b[k] -= step * gb[k]
  }
  return { w, b }
}

t.test('logistic regression: the float64 minimiser of scikit-learn’s objective, for C = 1 and C = 0.1', async (t) => {
  const { x, y } = blobs(90, 5, 3, 1.2, 7)
  for (const c of [1, 0.1]) {
    const ref = reference(x, y, 3, c)
    const model = fitLogisticRegression(x, y, 3, { c, tolerance: 1e-5, maxIterations: 500 })
    const scale = Math.max(...ref.w.map(Math.abs), ...ref.b.map(Math.abs))
    let err = 0
    for (let i = 0; i < ref.w.length; i++) err = Math.max(err, Math.abs(model.weights[i] - ref.w[i]))
    for (let k = 0; k < 3; k++) err = Math.max(err, Math.abs(model.bias[k] - ref.b[k]))
    t.ok(model.converged, `C = ${c}: converged in ${model.iterations} iterations`)
    // The products are float32: the gradient's resolution holds the weights to ~1e-5 of their scale.
    t.ok(
      err / scale < 1e-4,
      `C = ${c}: weights and intercepts within ${(err / scale).toExponential(2)} of the float64 minimiser's (scale ${scale.toFixed(3)})`,
    )
  }
  // The default tolerance (scikit-learn's 1e-4 on the gradient) stops earlier: still within 1e-2 of the minimiser.
  const ref = reference(x, y, 3, 1)
  const model = fitLogisticRegression(x, y, 3)
  const scale = Math.max(...ref.w.map(Math.abs))
  t.ok(Math.max(...ref.w.map((v, i) => Math.abs(v - model.weights[i]))) / scale < 1e-2, `default tolerance: ${model.iterations} iterations`)
  // Its predictions: the argmax of the scores.
  const predicted = predictClasses(model, x)
  const accuracy = predicted.filter((p, i) => p === y[i]).length / y.length
  t.ok(accuracy > 0.6 && accuracy < 1, `overlapping blobs: training accuracy ${accuracy.toFixed(3)} (neither chance nor perfect)`)
})

t.test('two classes: scikit-learn’s binomial model (one weight vector, the same C)', async (t) => {
  const { x, y } = blobs(80, 4, 2, 1.5, 5)
  const n = 80
  const d = 4
  // Binomial logistic regression in float64: (1/n) Σ log(1 + exp(-s_i (w·x_i + b))) + ||w||² / (2 C n), s_i = ±1,
  // minimised by gradient descent to a gradient of 1e-12.
  const w = new Float64Array(d)
  let b = 0
  let sq = 0
  for (const v of x) sq += v * v
  const step = 1 / (0.25 * (sq / n + 1) + 1 / n)
  for (let it = 0; it < 200000; it++) {
    const gw = new Float64Array(d)
    let gb = 0
    for (let i = 0; i < n; i++) {
      let z = b
      for (let j = 0; j < d; j++) z += w[j] * x[i * d + j]
      const p = 1 / (1 + Math.exp(-z)) - y[i] // dloss/dz with y in {0, 1}
      for (let j = 0; j < d; j++) gw[j] += (p * x[i * d + j]) / n
      gb += p / n
    }
    for (let j = 0; j < d; j++) gw[j] += w[j] / n
    if (Math.max(...gw.map(Math.abs), Math.abs(gb)) < 1e-12) break
    for (let j = 0; j < d; j++) w[j] -= step * gw[j]
    b -= step * gb
  }
  const model = fitLogisticRegression(x, y, 2, { tolerance: 1e-5, maxIterations: 500 })
  const diff = Array.from({ length: d }, (_, j) => model.weights[d + j] - model.weights[j])
  const scale = Math.max(...w.map(Math.abs))
  const err = Math.max(...diff.map((v, j) => Math.abs(v - w[j])), Math.abs(model.bias[1] - model.bias[0] - b))
  t.ok(model.converged && err / scale < 1e-4, `w1 - w0, b1 - b0: within ${(err / scale).toExponential(2)} of the binomial minimiser's w, b`)
})

t.test('logistic regression refuses sizes and labels it cannot fit', async (t) => {
  const { x, y } = blobs(12, 3, 2, 0.1, 1)
  t.throws(() => fitLogisticRegression(x, y, 1), /classes must be an integer >= 2, got 1/)
  t.throws(
    () =>
      fitLogisticRegression(
        x,
        Int32Array.from(y, (v, i) => (i === 4 ? 2 : v)),
        2,
      ),
    /label 2 of row 4 is not in 0 \.\. 1/,
  )
  t.throws(() => fitLogisticRegression(x.subarray(0, 35), y, 2), /x holds 35 values, not n = 12 rows/)
  t.throws(() => fitLogisticRegression(new Float32Array(0), new Int32Array(0), 2), /no rows to fit/)
  t.throws(() => fitLogisticRegression(x, y, 2, { c: 0 }), /c must be positive, got 0/)
})

t.test('accuracy and F1 as scikit-learn defines them (its f1_score documentation’s example)', async (t) => {
  const r = scores(Int32Array.from([0, 1, 2, 0, 1, 2]), Int32Array.from([0, 2, 1, 0, 0, 1]))
  t.equal(r.accuracy, 2 / 6)
  t.ok(Math.abs(r.f1 - 0.26666666666666666) < 1e-15, `macro F1 ${r.f1}`)
  t.ok(Math.abs(r.f1Weighted - 0.26666666666666666) < 1e-15, `weighted F1 ${r.f1Weighted}`)
  // Labels only predicted count in the macro mean (with F1 0), not in the weights (no true rows).
  const u = scores(Int32Array.from([0, 0, 1, 1]), Int32Array.from([0, 0, 1, 2]))
  t.ok(Math.abs(u.f1 - (1 + 2 / 3 + 0) / 3) < 1e-15, `a label only predicted: macro F1 ${u.f1}`)
  t.ok(Math.abs(u.f1Weighted - (2 * 1 + 2 * (2 / 3)) / 4) < 1e-15, `weighted F1 ${u.f1Weighted}`)
})

/** An embed that looks each text up (texts named "t<i>"), and counts what it was asked. */
function tableEmbed(x: Float32Array, dim: number): { embed: (texts: string[]) => Promise<Float32Array[]>; asked: string[][] } {
  const asked: string[][] = []
  return {
    asked,
    embed: async (texts) => {
      asked.push(texts)
      return texts.map((s) => {
        const i = Number(s.slice(1))
        return x.slice(i * dim, (i + 1) * dim)
      })
    },
  }
}

t.test('the draws are MTEB’s: the rows its _undersample_data takes, numpy’s shuffles and all', needsNumpy, async (t) => {
  // 90 training rows of 3 labels in a scrambled order; MTEB's loop (as it stands in AbsTaskClassification, with
  // RandomState(42) as Evaluator's np.random.seed(42) leaves the stream before each draw) run by numpy.
  const labels = Array.from({ length: 90 }, (_, i) => ['a', 'b', 'c'][(i * 7) % 3])
  const set: ClassificationSet = {
    name: 'rows',
    train: { texts: labels.map((_, i) => `t${i}`), labels },
    test: { texts: ['t0', 't1', 't2'], labels: ['a', 'b', 'c'] },
  }
  const dim = 4
  const { embed, asked } = tableEmbed(
    Float32Array.from({ length: 90 * dim }, (_, k) => Math.sin(k * 1.3)),
    dim,
  )
  for (const [experiments, perLabel] of [
    [1, 4],
    [3, 2],
    [10, 5],
  ]) {
    asked.length = 0
    await evaluateClassification(embed, set, { experiments, samplesPerLabel: perLabel })
    const want = numpyJson(
      [
        `y = ${JSON.stringify(labels)}`,
        'idxs, used = list(range(len(y))), set()',
        `for e in range(${experiments}):`,
        '    np.random.RandomState(42).shuffle(idxs)',
        '    counter = {}',
        '    for i in idxs:',
        `        if counter.get(y[i], 0) < ${perLabel}:`,
        '            used.add(i)',
        '            counter[y[i]] = counter.get(y[i], 0) + 1',
        'print(json.dumps(sorted(used)))',
      ].join('\n'),
    ) as number[]
    const got = asked[0].map((x) => Number(x.slice(1))).sort((a, b) => a - b)
    t.same(got, want, `${experiments} draws of ${perLabel} per label: the rows MTEB draws (${got.length})`)
  }
})

t.test('train/test: MTEB’s draws of rows per label, every row with 0, the same scores from the same seed', async (t) => {
  const dim = 6
  const { x, y } = blobs(240, dim, 4, 1.6, 3)
  const names = ['neg', 'neutral', 'pos', 'mixed']
  // Rows 0-179 train, 180-239 test.
  const set: ClassificationSet = {
    name: 'blobs',
    train: { texts: Array.from({ length: 180 }, (_, i) => `t${i}`), labels: Array.from({ length: 180 }, (_, i) => names[y[i]]) },
    test: { texts: Array.from({ length: 60 }, (_, i) => `t${180 + i}`), labels: Array.from({ length: 60 }, (_, i) => names[y[180 + i]]) },
  }
  const { embed, asked } = tableEmbed(x, dim)
  const r = await evaluateClassification(embed, set)
  t.same([r.protocol, r.classes, r.trainRows, r.testRows, r.fits, r.samplesPerLabel, r.converged], ['train/test', 4, 180, 60, 10, 32, true])
  t.equal(asked.length, 2, 'the training rows drawn, then the test split: each embedded once')
  t.equal(asked[1].length, 60)
  // Only the rows the draws take are embedded (MTEB's training splits can hold millions): 3 draws of 2 per label
  // take from 8 to 24 distinct rows.
  asked.length = 0
  const few = await evaluateClassification(embed, set, { samplesPerLabel: 2, experiments: 3 })
  t.ok(
    asked[0].length >= 8 && asked[0].length <= 24 && new Set(asked[0]).size === asked[0].length,
    `${asked[0].length} training rows embedded`,
  )
  t.ok(
    asked[0].every((x) => set.train.texts.includes(x)),
    'all of them training rows',
  )
  t.equal(few.fits, 3)
  const events: { done: number; total: number }[] = []
  await evaluateClassification(embed, set, { samplesPerLabel: 2, experiments: 3, onProgress: (p) => events.push(p) })
  t.same(events.at(-1), { done: asked[0].length + 60, total: asked[0].length + 60 }, 'progress: the rows drawn and the test split')
  t.ok(r.accuracy > 0.4 && r.accuracy < 1, `accuracy ${r.accuracy.toFixed(4)} ± ${r.accuracyStd.toFixed(4)}`)
  t.ok(r.accuracyStd > 0, 'the draws differ')
  t.same(await evaluateClassification(embed, set), r, 'the same seed: the same scores')
  t.same(await evaluateClassification(embed, set, { seed: 42 }), r, 'seed 42 by default (MTEB’s)')
  t.not((await evaluateClassification(embed, set, { seed: 1 })).accuracy, r.accuracy, 'another seed: other draws')

  // Every row (samplesPerLabel 0): one fit, the classifier of all the training rows, scored here by hand.
  const all = await evaluateClassification(embed, set, { samplesPerLabel: 0 })
  const order = [...names].sort() // class names in code-point order: the classifier's class indices
  const model = fitLogisticRegression(
    x.subarray(0, 180 * dim),
    Int32Array.from(set.train.labels, (l) => order.indexOf(l)),
    4,
  )
  const predicted = predictClasses(model, x.subarray(180 * dim))
  const want = scores(
    Int32Array.from(set.test!.labels, (l) => order.indexOf(l)),
    predicted,
  )
  t.same(
    [all.fits, all.samplesPerLabel, all.accuracy, all.f1, all.f1Weighted, all.accuracyStd],
    [1, null, want.accuracy, want.f1, want.f1Weighted, 0],
  )

  // A test label the training split lacks: never predicted, so always wrong.
  const extra: ClassificationSet = { ...set, test: { texts: [...set.test!.texts, 't0'], labels: [...set.test!.labels, 'unseen'] } }
  const e = await evaluateClassification(embed, extra, { samplesPerLabel: 0 })
  t.ok(Math.abs(e.accuracy - (want.accuracy * 60) / 61) < 1e-12, `one unseen label among 61: accuracy ${e.accuracy.toFixed(4)}`)
})

t.test('cross-validation: stratified folds, each row scored once', async (t) => {
  const { x, y } = blobs(103, 4, 3, 1.4, 11)
  const folds = stratifiedFolds(y, 3, 10, 0)
  for (let f = 0; f < 10; f++)
    for (let k = 0; k < 3; k++) {
      const inFold = [...y.keys()].filter((i) => folds[i] === f && y[i] === k).length
      const share = y.filter((v) => v === k).length / 10
      if (Math.abs(inFold - share) >= 1) t.fail(`fold ${f}, label ${k}: ${inFold} rows, ${share} expected`)
    }
  t.pass('every fold holds its share of every label (within one row)')
  const set: ClassificationSet = {
    name: 'cv',
    train: { texts: Array.from({ length: 103 }, (_, i) => `t${i}`), labels: Array.from(y, (v) => String(v)) },
    test: null,
  }
  const { embed } = tableEmbed(x, 4)
  const r = await evaluateClassification(embed, set)
  t.same([r.protocol, r.fits, r.testRows, r.samplesPerLabel], ['cross-validation', 10, 103, null])
  // The mean of the folds' accuracies, each fold's classifier fitted to the other nine.
  let sum = 0
  for (let f = 0; f < 10; f++) {
    const train = [...y.keys()].filter((i) => folds[i] !== f)
    const test = [...y.keys()].filter((i) => folds[i] === f)
    const pick = (rows: number[]) => Float32Array.from(rows.flatMap((i) => [...x.subarray(i * 4, i * 4 + 4)]))
    const model = fitLogisticRegression(
      pick(train),
      Int32Array.from(train, (i) => y[i]),
      3,
    )
    sum += scores(
      Int32Array.from(test, (i) => y[i]),
      predictClasses(model, pick(test)),
    ).accuracy
  }
  t.ok(Math.abs(r.accuracy - sum / 10) < 1e-12, `accuracy ${r.accuracy.toFixed(4)}: the folds' mean`)
  await t.rejects(evaluateClassification(embed, set, { folds: 1 }), /folds must be an integer from 2 to the rows \(103\), got 1/)
  await t.rejects(evaluateClassification(embed, set, { samplesPerLabel: -1 }), /cv: samplesPerLabel must be an integer >= 0, got -1/)
  await t.rejects(evaluateClassification(embed, set, { experiments: 0.5 }), /cv: experiments must be an integer >= 1, got 0\.5/)
})

t.test('readers: a folder of splits (JSONL, gzipped JSONL, CSV, Parquet shards under data/) or one file', async (t) => {
  const rows = (n: number, offset: number) => Array.from({ length: n }, (_, i) => ({ text: `sentence ${offset + i}`, label: i % 3 }))
  const jsonl = (r: object[]) => r.map((o) => JSON.stringify(o)).join('\n') + '\n'
  const a = join(dir, 'a')
  mkdirSync(a)
  writeFileSync(join(a, 'train.jsonl'), jsonl(rows(9, 0)))
  writeFileSync(join(a, 'test.jsonl.gz'), gzipSync(jsonl(rows(6, 100))))
  writeFileSync(join(a, 'validation.csv'), 'text,label\n"a, quoted",x\nplain,y\n')
  const set = await readClassificationSet(a)
  t.same(set.train.texts.slice(0, 2), ['sentence 0', 'sentence 1'])
  t.same(set.train.labels.slice(0, 4), ['0', '1', '2', '0'], 'integer labels as class names')
  t.same(set.test!.texts.length, 6, 'test.jsonl.gz')
  const v = await readClassificationSet(a, 'validation')
  t.same(
    [v.test!.texts, v.test!.labels],
    [
      ['a, quoted', 'plain'],
      ['x', 'y'],
    ],
    '--split validation: the CSV',
  )
  await t.rejects(readClassificationSet(a, 'dev'), /a folder needs a train split and a dev split .* found no dev split/)
  await t.rejects(readClassificationSet(a, 'train'), /the split scored must not be the training split/)

  // The Hub's layout: data/<split>-00000-of-00001.parquet (int64 labels arrive as bigints).
  const hub = join(dir, 'hub')
  mkdirSync(join(hub, 'data'), { recursive: true })
  for (const split of ['train', 'test'])
    copyFileSync(join('test', 'fixtures', 'parquet', 'unnamed.parquet'), join(hub, 'data', `${split}-00000-of-00001.parquet`))
  const p = await readClassificationSet(hub)
  t.same([p.train.texts.length, p.train.labels.slice(0, 3), p.test!.texts[0]], [12, ['0', '1', '2'], 'the dog on'])

  // One file: cross-validation.
  writeFileSync(join(dir, 'mr.tsv'), 'sentence\tlabel\ngood film\tpos\nbad film\tneg\n')
  const mr = await readClassificationSet(join(dir, 'mr.tsv'))
  t.same([mr.test, mr.train.labels], [null, ['pos', 'neg']], 'a TSV with sentence, label')

  // Refusals.
  writeFileSync(join(dir, 'nolabel.jsonl'), '{"text": "x", "category": 1}\n')
  await t.rejects(
    readClassificationSet(join(dir, 'nolabel.jsonl')),
    /nolabel\.jsonl: no label column \(looked for label; the columns are text, category\)/,
  )
  writeFileSync(join(dir, 'empty-text.jsonl'), '{"text": "x", "label": 1}\n{"text": " ", "label": 0}\n')
  await t.rejects(
    readClassificationSet(join(dir, 'empty-text.jsonl')),
    /empty-text\.jsonl: line 2: text must be a non-empty string, got " "/,
  )
  writeFileSync(join(dir, 'one.jsonl'), '{"text": "x", "label": 1}\n{"text": "y", "label": 1}\n')
  await t.rejects(readClassificationSet(join(dir, 'one.jsonl')), /one\.jsonl: one label only \(1\): nothing to classify/)
  writeFileSync(join(dir, 'badlabel.jsonl'), '{"text": "x", "label": [1]}\n')
  await t.rejects(
    readClassificationSet(join(dir, 'badlabel.jsonl')),
    /badlabel\.jsonl: line 1: label must be a class \(a string or a number\), got \[1\]/,
  )
  await t.rejects(readClassificationSet(join(dir, 'missing.jsonl')), /missing\.jsonl: no such file/)
})
