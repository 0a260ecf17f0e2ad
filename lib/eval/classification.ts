// Classification on a model's frozen vectors (MTEB's classification tasks; SentEval's transfer tasks): a logistic
// regression is fitted to the training texts' vectors and scored on the others' labels. Two protocols:
// - a folder with a train split and a test split (MTEB's datasets: text, label): as MTEB, `experiments` draws (10) of
//   at most `samplesPerLabel` training rows per label (32, what MTEB's English tasks use; 0: all of them, one fit),
//   each fitted and scored on the whole test split; the scores are the draws' means;
// - one file: stratified k-fold cross-validation (SentEval's MR, CR, SUBJ, MPQA: 10 folds), each fold scored by a
//   classifier fitted to the other folds (all their rows, unless samplesPerLabel is given).
// Accuracy (the main score), macro F1 and support-weighted F1, as scikit-learn computes them. The draws are MTEB's
// (numpy's seeded shuffles, lib/util/numpy-shuffle.ts), the folds come from a seeded permutation: a run repeats exactly.
import { permutation } from '../data/sentences.js'
import { numpyShuffle } from '../util/numpy-shuffle.js'
import type { Embed } from '../embed/memo-embed.js'
import { embedInBatches } from '../embed/embed-texts.js'
import { fitLogisticRegression, predictClasses, type LogisticRegressionOptions } from './logistic-regression.js'
import { columnName, isFolder, labelCell, readTable, splitFile, textCell, type Table } from './table.js'

export interface LabelledTexts {
  texts: string[]
  /** Each text's class name. */
  labels: string[]
}

export interface ClassificationSet {
  /** The folder or file it was read from. */
  name: string
  train: LabelledTexts
  /** The split scored (a folder's), or null: cross-validation over `train`. */
  test: LabelledTexts | null
}

export interface ClassificationOptions extends LogisticRegressionOptions {
  /** Draws of the training rows (train/test sets; default 10, 1 when every row is used). */
  experiments?: number
  /** Training rows per label in each draw or fold: 0 for all. Default 32 for train/test sets, all for cross-validation. */
  samplesPerLabel?: number
  /** Folds of a cross-validated set. Default 10. */
  folds?: number
  /**
   * Seeds the draws (numpy's RandomState, as MTEB: default 42, MTEB's, so its draws are these) and the folds of
   * cross-validation (default 0).
   */
  seed?: number
  /** Called after each batch of texts embedded: done so far of the task's total. */
  onProgress?: (p: { done: number; total: number }) => void
}

export interface ClassificationResult {
  dataset: string
  protocol: 'train/test' | 'cross-validation'
  classes: number
  /** Rows of the training split (of the file, for cross-validation) and of the test split. */
  trainRows: number
  testRows: number
  /** Fits averaged: the draws, or the folds. */
  fits: number
  samplesPerLabel: number | null
  accuracy: number
  /** The fits' standard deviation of the accuracy (population). */
  accuracyStd: number
  /** Macro-averaged F1 over the labels that occur (scikit-learn's f1_score average='macro'). */
  f1: number
  /** F1 weighted by each true label's rows (average='weighted'). */
  f1Weighted: number
  /** Whether every fit reached the gradient tolerance within its iterations. */
  converged: boolean
}

const TEXT_COLUMNS = ['text', 'sentence']
const LABEL_COLUMNS = ['label']

/** A split's texts and labels (columns text or sentence, and label). */
export async function readLabelledTexts(path: string): Promise<LabelledTexts> {
  const table = await readTable(path)
  if (table.rows === 0) throw new Error(`${path}: no rows`)
  return labelledTexts(table)
}

function labelledTexts(table: Table): LabelledTexts {
  const t = columnName(table, TEXT_COLUMNS, 'text')
  const l = columnName(table, LABEL_COLUMNS, 'label')
  const texts = table.column(t).map((v, i) => textCell(table, v, i, t))
  const labels = table.column(l).map((v, i) => labelCell(table, v, i, l))
  return { texts, labels }
}

/**
 * A classification set: a folder's train split and `split` (default 'test'), or one file to cross-validate. Errors
 * name the split files looked for.
 */
export async function readClassificationSet(path: string, split = 'test'): Promise<ClassificationSet> {
  if (!isFolder(path)) {
    const train = await readLabelledTexts(path)
    if (new Set(train.labels).size < 2) throw new Error(`${path}: one label only (${train.labels[0]}): nothing to classify`)
    return { name: path, train, test: null }
  }
  if (split === 'train') throw new Error(`${path}: the split scored must not be the training split`)
  const testFile = splitFile(path, split)
  if (splitFile(path, 'train') === null || testFile === null)
    throw new Error(
      `${path}: a folder needs a train split and a ${split} split (train.jsonl, ${split}.jsonl, .jsonl.gz, .csv, .tsv, .parquet, ` +
        `or data/train-*.parquet and data/${split}-*.parquet); found ${splitFile(path, 'train') === null ? 'no train split' : `no ${split} split`}`,
    )
  const train = await readLabelledTexts(splitFile(path, 'train')!)
  if (new Set(train.labels).size < 2) throw new Error(`${path}: its train split has one label only: nothing to classify`)
  return { name: path, train, test: await readLabelledTexts(testFile) }
}

/** Scores `embed`'s vectors of the set's texts (each text embedded once). */
export async function evaluateClassification(
  embed: Embed,
  set: ClassificationSet,
  options: ClassificationOptions = {},
): Promise<ClassificationResult> {
  const check = (name: string, v: number | undefined, min: number) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min))
      throw new Error(`${set.name}: ${name} must be an integer >= ${min}, got ${v}`)
  }
  check('samplesPerLabel', options.samplesPerLabel, 0)
  check('experiments', options.experiments, 1)
  const classes = [...new Set(set.train.labels)].sort(compareLabels)
  const index = new Map(classes.map((c, i) => [c, i]))
  const trainY = Int32Array.from(set.train.labels, (l) => index.get(l)!)
  const fits: Fit[] = []
  if (set.test) {
    const perLabel = options.samplesPerLabel ?? 32
    const experiments = perLabel === 0 ? 1 : (options.experiments ?? 10)
    // MTEB's draws, row for row: one order of the rows, shuffled again before each draw by numpy's
    // RandomState(seed).shuffle (seed 42: MTEB's), each draw the first rows of each label in it.
    const order = [...trainY.keys()]
    const draws = Array.from({ length: experiments }, () => {
      if (perLabel === 0) return order
      numpyShuffle(order, options.seed ?? 42)
      return firstPerLabel(order, trainY, perLabel)
    })
    // Only the rows some draw takes are embedded: MTEB's training splits run to millions of rows (AmazonPolarity's
    // 3.6 M), of which 10 draws of 32 per label take a few hundred.
    const used = [...new Set(draws.flat())].sort((a, b) => a - b)
    const progress = { total: used.length + set.test.texts.length, done: 0, onProgress: options.onProgress }
    const vectors = await embedInBatches(
      embed,
      used.map((i) => set.train.texts[i]),
      progress,
    )
    const trainX = new Array<Float32Array>(trainY.length)
    used.forEach((i, k) => (trainX[i] = vectors[k]))
    const testX = rowsOf(await embedInBatches(embed, set.test.texts, progress))
    // A test label the training split lacks is one no classifier predicts: -1, always wrong.
    const testY = Int32Array.from(set.test.labels, (l) => index.get(l) ?? -1)
    for (const rows of draws) fits.push(fitAndScore(trainX, trainY, rows, testX, testY, options))
  } else {
    const folds = options.folds ?? 10
    if (!Number.isInteger(folds) || folds < 2 || folds > trainY.length)
      throw new Error(`${set.name}: folds must be an integer from 2 to the rows (${trainY.length}), got ${folds}`)
    const trainX = await embedInBatches(embed, set.train.texts, { total: set.train.texts.length, done: 0, onProgress: options.onProgress })
    const seed = options.seed ?? 0
    const foldOf = stratifiedFolds(trainY, classes.length, folds, seed)
    for (let f = 0; f < folds; f++) {
      const trainRows = [...trainY.keys()].filter((i) => foldOf[i] !== f)
      const testRows = [...trainY.keys()].filter((i) => foldOf[i] === f)
      if (testRows.length === 0) continue
      const perLabel = options.samplesPerLabel ?? 0
      const order = permutation(trainRows.length, seed, f)
      const chosen =
        perLabel === 0
          ? trainRows
          : firstPerLabel(
              Uint32Array.from(order, (k) => trainRows[k]),
              trainY,
              perLabel,
            )
      const testX = rowsOf(testRows.map((i) => trainX[i]))
      fits.push(
        fitAndScore(
          trainX,
          trainY,
          chosen,
          testX,
          Int32Array.from(testRows, (i) => trainY[i]),
          options,
        ),
      )
    }
  }
  const mean = (f: (x: Fit) => number) => fits.reduce((s, x) => s + f(x), 0) / fits.length
  const accuracy = mean((x) => x.accuracy)
  return {
    dataset: set.name,
    protocol: set.test ? 'train/test' : 'cross-validation',
    classes: classes.length,
    trainRows: set.train.texts.length,
    testRows: set.test ? set.test.texts.length : set.train.texts.length,
    fits: fits.length,
    samplesPerLabel: (set.test ? (options.samplesPerLabel ?? 32) : (options.samplesPerLabel ?? 0)) || null,
    accuracy,
    accuracyStd: Math.sqrt(mean((x) => (x.accuracy - accuracy) ** 2)),
    f1: mean((x) => x.f1),
    f1Weighted: mean((x) => x.f1Weighted),
    converged: fits.every((x) => x.converged),
  }
}

/** Integers in numeric order (MTEB's labels: 0, 1, ..., 10), else names in code-point order. */
function compareLabels(a: string, b: string): number {
  const integer = /^-?\d+$/
  if (integer.test(a) && integer.test(b)) return Number(a) - Number(b)
  return a < b ? -1 : a > b ? 1 : 0
}

function rowsOf(vectors: Float32Array[]): Float32Array {
  const dim = vectors[0]?.length ?? 0
  const out = new Float32Array(vectors.length * dim)
  vectors.forEach((v, i) => {
    if (v.length !== dim) throw new Error(`vectors of different lengths (${dim} and ${v.length})`)
    out.set(v, i * dim)
  })
  return out
}

/** MTEB's undersampling: walking `order`, the first `perLabel` rows of each label. */
function firstPerLabel(order: ArrayLike<number>, y: Int32Array, perLabel: number): number[] {
  const taken = new Map<number, number>()
  const rows: number[] = []
  for (let k = 0; k < order.length; k++) {
    const i = order[k]
    const n = taken.get(y[i]) ?? 0
    if (n < perLabel) {
      rows.push(i)
      taken.set(y[i], n + 1)
    }
  }
  return rows
}

/** Each row's fold: every label's rows, in a seeded random order, dealt to the folds in turn (each fold gets its share of every label). */
export function stratifiedFolds(y: Int32Array, classes: number, folds: number, seed: number): Int32Array {
  const foldOf = new Int32Array(y.length)
  const dealt = new Int32Array(classes)
  for (const i of permutation(y.length, seed, 0x5f01d)) foldOf[i] = dealt[y[i]]++ % folds
  return foldOf
}

interface Fit {
  accuracy: number
  f1: number
  f1Weighted: number
  converged: boolean
}

function fitAndScore(
  x: Float32Array[],
  y: Int32Array,
  rows: number[],
  testX: Float32Array,
  testY: Int32Array,
  options: LogisticRegressionOptions,
): Fit {
  // Labels the draw lacks are left out of the fit (a class without rows would only drift); predictions map back.
  const present = [...new Set(rows.map((i) => y[i]))].sort((a, b) => a - b)
  if (present.length < 2) throw new Error('a draw of the training rows holds one label only: give more rows per label')
  const local = new Map(present.map((k, j) => [k, j]))
  const model = fitLogisticRegression(
    rowsOf(rows.map((i) => x[i])),
    Int32Array.from(rows, (i) => local.get(y[i])!),
    present.length,
    options,
  )
  const predicted = Int32Array.from(predictClasses(model, testX), (j) => present[j])
  return { ...scores(testY, predicted), converged: model.converged }
}

/** Accuracy and F1 (macro, weighted) of predicted against true labels, as scikit-learn's (labels: those either holds). */
export function scores(truth: Int32Array, predicted: Int32Array): { accuracy: number; f1: number; f1Weighted: number } {
  const labels = [...new Set([...truth, ...predicted])]
  let correct = 0
  for (let i = 0; i < truth.length; i++) if (truth[i] === predicted[i]) correct++
  let macro = 0
  let weighted = 0
  for (const label of labels) {
    let tp = 0
    let fp = 0
    let fn = 0
    for (let i = 0; i < truth.length; i++) {
      if (predicted[i] === label && truth[i] === label) tp++
      else if (predicted[i] === label) fp++
      else if (truth[i] === label) fn++
    }
    // F1 = 2tp / (2tp + fp + fn), 0 where the label is neither true nor predicted correctly (scikit-learn's zero_division).
    const f1 = tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn)
    macro += f1
    weighted += f1 * (tp + fn)
  }
  return { accuracy: correct / truth.length, f1: macro / labels.length, f1Weighted: weighted / truth.length }
}
