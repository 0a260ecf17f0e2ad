// MTEB's other task kinds as evaluations during training (train()'s evalClassification, evalClustering,
// evalPairClassification, evalReranking and selectBy): each set scored at every evaluation from its folder's
// validation, dev or else test split, the numbers those of `evaluate*` on the saved model's vectors, the model chosen
// by the kind selectBy names (by default the first kind given), and the log, TensorBoard scalars, metrics.json, model
// card, plot and screen that show them.
import t from 'tap'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  evaluateClassification,
  evaluateClustering,
  evaluatePairClassification,
  evaluateReranking,
  readClassificationSet,
  readClusteringDataset,
  readPairClassificationSet,
  readRerankingSet,
  readSummarizationSet,
  evaluateSummarization,
  SentenceEncoder,
} from '../lib/index.js'
import { train } from '../lib/train/train.js'
import { scalarsOf } from '../lib/train/tensorboard.js'
import { selectionSplit } from '../lib/train/task-evaluation.js'
import { validateCheckpointState } from '../lib/train/checkpoint-state.js'
import type { EvalInfo } from '../lib/train/events.js'
import { frontMatterOf } from './helpers/yaml.js'
import { needsCli, runCli, tempDir, TINY_RUN, WORDS, writeSentences, writeStsFile } from './helpers/train-corpus.js'

const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n'
/** Three of the grammar's words from `i`: the first names the label (its index mod 3). */
const text = (i: number) => [0, 5, 7].map((k) => WORDS[(i + k * (1 + (i % 4))) % WORDS.length]).join(' ')
const labelOf = (i: number) => ['animal', 'thing', 'verb'][(i % WORDS.length) % 3]

/**
 * The five sets: classification and pair classification folders with validation and dev splits, a clustering file, a
 * reranking folder with a test split only, a summarization file.
 */
function taskSets(dir: string) {
  const classification = join(dir, 'topics')
  mkdirSync(classification)
  const rows = (from: number, n: number) => Array.from({ length: n }, (_, k) => ({ text: text(from + k), label: labelOf(from + k) }))
  writeFileSync(join(classification, 'train.jsonl'), jsonl(rows(0, 36)))
  writeFileSync(join(classification, 'validation.jsonl'), jsonl(rows(36, 15)))
  writeFileSync(join(classification, 'test.jsonl'), jsonl(rows(51, 4)))
  const clustering = join(dir, 'clusters.jsonl')
  writeFileSync(clustering, jsonl(rows(60, 18).map((r) => ({ sentences: r.text, labels: r.label }))))
  const pairs = join(dir, 'pairs')
  mkdirSync(pairs)
  const pairRows = (from: number, n: number) =>
    Array.from({ length: n }, (_, k) => {
      const i = from + k
      return { sentence1: text(i), sentence2: k % 2 ? text(i) : text(i + 5), label: k % 2 }
    })
  writeFileSync(join(pairs, 'dev.jsonl'), jsonl(pairRows(0, 12)))
  writeFileSync(join(pairs, 'test.jsonl'), jsonl(pairRows(20, 4)))
  const reranking = join(dir, 'rerank')
  mkdirSync(reranking)
  writeFileSync(
    join(reranking, 'test.jsonl'),
    jsonl(Array.from({ length: 6 }, (_, i) => ({ query: text(i), positive: [text(i)], negative: [text(i + 1), text(i + 2)] }))),
  )
  const summarization = join(dir, 'summaries.jsonl')
  writeFileSync(
    summarization,
    jsonl(
      Array.from({ length: 5 }, (_, i) => ({
        human_summaries: [text(i)],
        machine_summaries: [text(i), text(i + 3), text(i + 6), text(i + 9)],
        relevance: [5, 2, 3.5, 1],
      })),
    ),
  )
  return { classification, clustering, pairs, reranking, summarization }
}

/** A multilingual classification dataset `massive`: subsets de and en, each with train, validation and test splits. */
function multilingualSet(dir: string): string {
  const multi = join(dir, 'massive')
  for (const [k, lang] of ['de', 'en'].entries()) {
    mkdirSync(join(multi, lang), { recursive: true })
    const rows = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ text: text(from + i + k), label: labelOf(from + i) }))
    writeFileSync(join(multi, lang, 'train.jsonl'), jsonl(rows(0, 24)))
    writeFileSync(join(multi, lang, 'validation.jsonl'), jsonl(rows(24, 9)))
    writeFileSync(join(multi, lang, 'test.jsonl'), jsonl(rows(40, 3)))
  }
  return multi
}

t.test('selectionSplit: validation, else dev, else test; none for a file', async (t) => {
  const sets = taskSets(tempDir('simcsepp-task-split-'))
  t.equal(selectionSplit(sets.classification), 'validation')
  t.equal(selectionSplit(sets.pairs), 'dev')
  t.equal(selectionSplit(sets.reranking), 'test')
  t.equal(selectionSplit(sets.clustering), undefined)
})

t.test('the five kinds at each evaluation; classification selects by default; the numbers are the saved model’s', async (t) => {
  const dir = tempDir('simcsepp-train-tasks-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const sets = taskSets(dir)
  const out = join(dir, 'out')
  const evals: EvalInfo[] = []
  const messages: string[] = []
  const result = await train(
    {
      ...TINY_RUN,
      data,
      device: 'cpu',
      out,
      steps: 4,
      evalEvery: 2,
      lr: 3e-3,
      tensorboard: true,
      evalClassification: [sets.classification],
      evalClustering: [sets.clustering],
      evalPairClassification: [sets.pairs],
      evalReranking: [sets.reranking],
      evalSummarization: [sets.summarization],
    },
    { onEval: (e) => void evals.push(e), onMessage: (m) => void messages.push(m) },
  )
  for (const said of [
    `${sets.classification} (validation split): classification, 36 training and 15 test texts, accuracy`,
    `${sets.clustering}: clustering, 1 set of 18 texts, V-measure`,
    `${sets.pairs} (dev split): pair classification, 12 pairs, AP`,
    `${sets.reranking} (test split): reranking, 6 queries, MAP`,
    `${sets.summarization}: summarization, 5 texts, cosine Spearman`,
  ])
    t.ok(
      messages.some((m) => m.includes(said)),
      `said: ${said}`,
    )
  t.equal(evals.length, 3, 'steps 0, 2, 4')
  for (const e of evals) {
    t.same(e.results, [], 'no STS files')
    t.match(e.classification, [{ dataset: sets.classification, split: 'validation', testRows: 15, trainRows: 36, fits: 10 }])
    t.match(e.clustering, [{ dataset: sets.clustering, sets: 1, texts: 18 }])
    t.notOk('split' in e.clustering![0], 'a file: no split')
    t.match(e.pairClassification, [{ dataset: sets.pairs, split: 'dev', pairs: 12 }])
    t.match(e.reranking, [{ dataset: sets.reranking, split: 'test', queries: 6 }])
    t.match(e.summarization, [{ dataset: sets.summarization, texts: 5 }])
    t.same(e.selection, { set: 'topics (validation)', metric: 'accuracy', score: e.classification![0].accuracy })
    // TensorBoard: each set's scores under its name and split.
    const tags = Object.fromEntries(scalarsOf(e))
    t.same(
      [
        tags['eval/topics_validation/accuracy'],
        tags['eval/clusters.jsonl/v_measure'],
        tags['eval/pairs_dev/ap'],
        tags['eval/rerank_test/map'],
      ],
      [e.classification![0].accuracy, e.clustering![0].vMeasure, e.pairClassification![0].ap, e.reranking![0].map],
      'TensorBoard scalars',
    )
  }
  const best = evals.filter((e) => e.best).at(-1)!
  const bestAccuracy = best.classification![0].accuracy
  t.same(result.best, { step: best.step, accuracy: bestAccuracy }, 'the best: by the first classification set’s accuracy')
  for (const e of evals) t.ok(e.classification![0].accuracy <= bestAccuracy, `step ${e.step} is not better than the best`)

  // The saved model, encoded by SentenceEncoder and scored by the library on the same splits, gives the logged numbers
  // of the best step (which another step's differ from: the model saved is that step's, not the last).
  t.ok(
    evals.some((e) => e.step !== best.step && e.classification![0].f1 !== best.classification![0].f1),
    'another step scored otherwise',
  )
  const enc = await SentenceEncoder.load(out, { device: 'cpu' })
  const embed = (s: string[]) => enc.encode(s)
  const again = {
    classification: await evaluateClassification(embed, await readClassificationSet(sets.classification, 'validation')),
    clustering: await evaluateClustering(embed, await readClusteringDataset(sets.clustering)),
    pairs: await evaluatePairClassification(embed, await readPairClassificationSet(sets.pairs, 'dev')),
    reranking: await evaluateReranking(embed, await readRerankingSet(sets.reranking, 'test')),
    summarization: await evaluateSummarization(embed, await readSummarizationSet(sets.summarization)),
  }
  await enc.close()
  const near = (a: number, b: number, what: string) => t.ok(Math.abs(a - b) < 1e-6, `${what}: ${a.toFixed(6)}, logged ${b.toFixed(6)}`)
  near(again.classification.accuracy, bestAccuracy, 'accuracy')
  near(again.classification.f1, best.classification![0].f1, 'macro F1')
  near(again.clustering.vMeasure, best.clustering![0].vMeasure, 'V-measure')
  near(again.pairs.ap, best.pairClassification![0].ap, 'AP')
  near(again.reranking.map, best.reranking![0].map, 'MAP')
  near(again.summarization.cosineSpearman, best.summarization![0].cosineSpearman, 'cosine Spearman')

  const metrics = JSON.parse(readFileSync(join(out, 'run', 'metrics.json'), 'utf8'))
  t.same(metrics.best, result.best, 'metrics.json')
  const state = JSON.parse(readFileSync(join(out, 'run', 'checkpoint', 'state.json'), 'utf8'))
  t.same(validateCheckpointState(state, 'state.json').best, result.best, 'the checkpoint keeps the best as it is')
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(
    card,
    '| step | topics (validation) accuracy | clusters.jsonl V-measure | pairs (dev) AP | rerank (test) MAP | summaries.jsonl cosine Spearman |',
  )
  t.match(card, "The model saved is the best of `topics (validation)`'s accuracy.")
  t.match(card, `| ${best.step} (saved) | ${(100 * bestAccuracy).toFixed(2)} |`)
  // The front matter's model-index: the saved (best) step's numbers, as PyYAML reads them.
  const meta = frontMatterOf(card) as {
    'model-index': { results: { task: { type: string }; metrics: { type: string; value: number }[] }[] }[]
  } | null
  if (meta) {
    const results = meta['model-index'][0].results
    t.same(
      results.map((r) => r.task.type),
      ['Classification', 'Clustering', 'binary-classification', 'reranking', 'Summarization'],
    )
    t.same(results[0].metrics[0], { type: 'accuracy', value: bestAccuracy, name: 'Accuracy' }, 'model-index: the best step’s accuracy')
    t.equal(results[3].metrics[0].value, best.reranking![0].map)
  }
  const svg = readFileSync(join(out, 'run', 'loss_curve.svg'), 'utf8')
  t.match(svg, /topics \(validation\) accuracy/, 'the plot shows the selecting score')
  t.match(svg, /accuracy ×100/)
})

t.test('selectBy picks the kind: reranking’s MAP over an STS file; resumed by another kind, the best is set aside', async (t) => {
  const dir = tempDir('simcsepp-train-select-by-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const sets = taskSets(dir)
  const sts = writeStsFile(join(dir, 'sts.tsv'))
  const out = join(dir, 'out')
  const evals: EvalInfo[] = []
  const run = { ...TINY_RUN, data, device: 'cpu' as const, out, steps: 2, evalEvery: 1, lr: 5e-4 }
  const result = await train(
    { ...run, evalFiles: [sts], evalReranking: [sets.reranking, sets.reranking], selectBy: 'reranking' },
    { onEval: (e) => void evals.push(e) },
  )
  const best = evals.filter((e) => e.best).at(-1)!
  t.same(result.best, { step: best.step, map: best.reranking![0].map }, 'the best: by the first reranking set’s MAP')
  for (const e of evals) {
    t.ok(Number.isFinite(e.spearman), 'STS still scored')
    t.same(e.selection, { set: 'rerank (test)', metric: 'map', score: e.reranking![0].map })
    t.equal(e.reranking![0].map, e.reranking![1].map, 'the same set twice: the same numbers')
    t.ok(e.reranking![0].map <= best.reranking![0].map, `step ${e.step} is not better than the best`)
  }
  t.match(readFileSync(join(out, 'README.md'), 'utf8'), "The model saved is the best of `rerank (test)`'s MAP.")

  // Resumed selecting by STS (the default with an STS file): the checkpoint's best (by MAP) is set aside.
  const messages: string[] = []
  const resumed = await train(
    { ...run, resume: out, evalFiles: [sts], evalReranking: [sets.reranking] },
    { onMessage: (m) => void messages.push(m) },
  )
  t.ok(
    messages.some((m) => /chosen by another measure than this run's \(spearman\)/.test(m)),
    'says the best was set aside',
  )
  t.equal(resumed.best, null, 'no evaluation ran after the last step: no best yet')

  await t.rejects(
    train({ ...run, out: join(dir, 'x'), evalFiles: [sts], selectBy: 'clustering' }),
    /selectBy clustering needs evalClustering \(its sets\)/,
  )
  await t.rejects(train({ ...run, out: join(dir, 'y'), evalFiles: [sts], selectBy: 'best' as never }), /selectBy must be sts, retrieval, /)
  await t.rejects(train({ ...run, out: join(dir, 'z'), evalClustering: 'x' as never }), /evalClustering must be an array of paths/)
  await t.rejects(train({ ...run, out: join(dir, 'w'), evalClassification: [join(dir, 'nowhere.jsonl')] }), /nowhere\.jsonl/)
})

t.test('simcsepp train --eval-classification --eval-pair-classification --select-by', needsCli, async (t) => {
  const dir = tempDir('simcsepp-train-tasks-cli-')
  const data = writeSentences(join(dir, 'data.txt'), 20)
  const sets = taskSets(dir)
  // A tiny run of `steps` steps evaluating at the last, with the classification and pair sets, selecting by `selectBy`.
  const trainCli = (steps: string, selectBy: string, out: string) =>
    runCli([
      'train',
      ...['--config', 'tiny', '--batch-size', '8', '--max-len', '12', '--data', data, '--steps', steps, '--eval-every', steps],
      ...['--eval-classification', sets.classification, '--eval-pair-classification', sets.pairs, '--select-by', selectBy],
      ...['--out', join(dir, out), '--device', 'cpu'],
    ])
  const r = trainCli('2', 'pair-classification', 'out')
  t.equal(r.status, 0, r.stderr)
  t.match(r.stderr, /step 2: topics \(validation\) accuracy \d+\.\d\d; pairs \(dev\) AP \d+\.\d\d/, 'each evaluation on screen')
  t.match(r.stderr, /best AP \d+\.\d\d at step \d/, 'the summary')
  const mean = trainCli('1', 'mean', 'mean')
  t.equal(mean.status, 0, mean.stderr)
  const [, acc, ap, both] =
    /step 1: topics \(validation\) accuracy (\d+\.\d\d); pairs \(dev\) AP (\d+\.\d\d); mean main score \(2 sets\) (\d+\.\d\d)/.exec(
      mean.stderr,
    ) ?? []
  t.ok(both !== undefined, 'the mean on screen')
  t.ok(Math.abs(Number(both) - (Number(acc) + Number(ap)) / 2) < 0.0101, `${both}: the mean of ${acc} and ${ap}`)
  t.match(mean.stderr, /best mean main score \d+\.\d\d at step \d/, 'the summary')
  const bad = runCli(['train', '--data', data, '--select-by', 'speed', '--out', join(dir, 'bad')])
  t.not(bad.status, 0)
  t.match(bad.stderr, /--select-by/)
})

t.test('a multilingual dataset (a folder per subset): each subset scored, the model selected by their mean', async (t) => {
  const dir = tempDir('simcsepp-train-subsets-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const multi = multilingualSet(dir)
  const evals: EvalInfo[] = []
  const messages: string[] = []
  const result = await train(
    { ...TINY_RUN, data, device: 'cpu', out: join(dir, 'out'), steps: 2, evalEvery: 1, lr: 3e-3, evalClassification: [multi] },
    { onEval: (e) => void evals.push(e), onMessage: (m) => void messages.push(m) },
  )
  t.ok(
    messages.some((m) => m.includes(`${join(multi, 'en')} (validation split): classification, 24 training and 9 test texts`)),
    'each subset said',
  )
  for (const e of evals) {
    t.match(e.classification, [
      { dataset: multi, subset: 'de', split: 'validation', testRows: 9 },
      { dataset: multi, subset: 'en', split: 'validation', testRows: 9 },
    ])
    const mean = (e.classification![0].accuracy + e.classification![1].accuracy) / 2
    t.same(e.selection, { set: 'massive (validation, mean of 2 subsets)', metric: 'accuracy', score: mean }, `step ${e.step}: the mean`)
    t.same(
      Object.keys(Object.fromEntries(scalarsOf(e))).filter((k) => k.endsWith('/accuracy')),
      ['eval/massive_de_validation/accuracy', 'eval/massive_en_validation/accuracy'],
    )
  }
  const best = evals.filter((e) => e.best).at(-1)!
  t.same(result.best, { step: best.step, accuracy: best.selection!.score })
  const card = readFileSync(join(dir, 'out', 'README.md'), 'utf8')
  t.match(card, '| step | massive/de (validation) accuracy | massive/en (validation) accuracy |')
  t.match(card, "The model saved is the best of `massive (validation, mean of 2 subsets)`'s accuracy.")
})

t.test('selectBy mean: the mean of every set’s main score (STS / 100, a multilingual dataset once), MTEB’s average', async (t) => {
  const dir = tempDir('simcsepp-train-select-mean-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const sets = taskSets(dir)
  const multi = multilingualSet(dir)
  const sts = writeStsFile(join(dir, 'sts.tsv'))
  const out = join(dir, 'out')
  const evalSets = { evalFiles: [sts], evalClassification: [multi, sets.classification], evalClustering: [sets.clustering] }
  const run = { ...TINY_RUN, data, device: 'cpu' as const, out, steps: 3, evalEvery: 1, lr: 3e-3, ...evalSets, selectBy: 'mean' as const }
  const evals: EvalInfo[] = []
  // Interrupted after step 2 and resumed: the checkpoint's best (by the mean) carries over, not set aside.
  const ctl = new AbortController()
  const onEval = (e: EvalInfo) => void evals.push(e)
  const first = await train(
    { ...run, tensorboard: true },
    { onEval, signal: ctl.signal, onStep: (s) => void (s.step === 2 && ctl.abort()) },
  )
  t.equal(first.interrupted, true)
  const messages: string[] = []
  const result = await train({ ...run, tensorboard: true, resume: out }, { onEval, onMessage: (m) => void messages.push(m) })
  t.notOk(
    messages.some((m) => /another measure/.test(m)),
    'not set aside',
  )
  t.same(
    evals.map((e) => e.step),
    [0, 1, 2, 3],
  )
  for (const e of evals) {
    const c = e.classification!
    // Four datasets: the STS file, massive (its two subsets' mean), topics, the clustering file.
    const mean = (e.results[0].spearman / 100 + (c[0].accuracy + c[1].accuracy) / 2 + c[2].accuracy + e.clustering![0].vMeasure) / 4
    t.match(e.selection, { set: '4 sets', metric: 'mean' })
    t.ok(Math.abs(e.selection!.score - mean) < 1e-12, `step ${e.step}: ${e.selection!.score} is the mean ${mean}`)
    t.equal(Object.fromEntries(scalarsOf(e))['eval/mean_main_score'], e.selection!.score, 'TensorBoard')
  }
  t.ok(new Set(evals.map((e) => e.selection!.score)).size > 1, 'the mean moves with training')
  const best = evals.filter((e) => e.best).at(-1)!
  t.same(result.best, { step: best.step, mean: best.selection!.score }, 'the best: by the mean')
  for (const e of evals) t.ok(e.selection!.score <= best.selection!.score, `step ${e.step} is not better than the best`)
  const state = JSON.parse(readFileSync(join(out, 'run', 'checkpoint', 'state.json'), 'utf8'))
  t.same(validateCheckpointState(state, 'state.json').best, result.best, 'the checkpoint keeps it')
  t.match(readFileSync(join(out, 'README.md'), 'utf8'), 'The model saved is the best of the mean main score over its 4 sets.')
  const svg = readFileSync(join(out, 'run', 'loss_curve.svg'), 'utf8')
  t.match(svg, /mean main score \(4 sets\)/, 'the plot draws the mean')
  t.match(svg, /mean main score ×100/)

  // Early stopping counts the mean, and says so.
  const still: string[] = []
  const stopped = await train(
    { ...run, out: join(dir, 'still'), steps: 10, lr: 1e-12, earlyStopping: 1, evalClassification: [sets.classification] },
    { onMessage: (m) => void still.push(m) },
  )
  t.ok(stopped.steps < 10, `stopped after step ${stopped.steps}`)
  t.match(still.join('\n'), /1 evaluation without a better mean main score than step \d+'s mean main score \d+\.\d\d/)

  await t.rejects(
    train({ ...TINY_RUN, data, out: join(dir, 'none'), selectBy: 'mean' }),
    /selectBy mean needs evaluation sets \(evalFiles, /,
  )

  // mean-type: each kind's mean, then their mean (MTEB's Mean (TaskType)): STS, classification (two datasets), clustering.
  const byType: EvalInfo[] = []
  const typed = await train(
    { ...run, out: join(dir, 'by-type'), steps: 1, selectBy: 'mean-type', tensorboard: true },
    { onEval: (e) => void byType.push(e) },
  )
  t.equal(byType.length, 2)
  for (const e of byType) {
    const c = e.classification!
    const want = (e.results[0].spearman / 100 + ((c[0].accuracy + c[1].accuracy) / 2 + c[2].accuracy) / 2 + e.clustering![0].vMeasure) / 3
    t.match(e.selection, { set: '4 sets, 3 kinds', metric: 'meanByType' })
    t.ok(Math.abs(e.selection!.score - want) < 1e-12, `step ${e.step}: ${e.selection!.score} is the mean of the kinds' means ${want}`)
    t.equal(Object.fromEntries(scalarsOf(e))['eval/mean_main_score_by_task_type'], e.selection!.score, 'TensorBoard')
  }
  const typedBest = byType.filter((e) => e.best).at(-1)!
  t.same(typed.best, { step: typedBest.step, meanByType: typedBest.selection!.score })
  t.match(
    readFileSync(join(dir, 'by-type', 'README.md'), 'utf8'),
    'The model saved is the best of the mean main score by task type over its 4 sets, 3 kinds.',
  )
  t.match(readFileSync(join(dir, 'by-type', 'run', 'loss_curve.svg'), 'utf8'), /mean main score by task type \(4 sets, 3 kinds\)/)
  await t.rejects(train({ ...TINY_RUN, data, out: join(dir, 'none'), selectBy: 'mean-type' }), /selectBy mean-type needs evaluation sets/)
})

t.test('evalExperiments: classification’s draws at each evaluation', async (t) => {
  const dir = tempDir('simcsepp-train-experiments-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const sets = taskSets(dir)
  const out = join(dir, 'out')
  const evals: EvalInfo[] = []
  await train(
    { ...TINY_RUN, data, device: 'cpu', out, steps: 1, evalEvery: 1, evalExperiments: 3, evalClassification: [sets.classification] },
    { onEval: (e) => void evals.push(e) },
  )
  const best = evals.filter((e) => e.best).at(-1)!
  t.equal(best.classification![0].fits, 3, 'three draws')
  const enc = await SentenceEncoder.load(out, { device: 'cpu' })
  const set = await readClassificationSet(sets.classification, 'validation')
  const three = await evaluateClassification((s) => enc.encode(s), set, { experiments: 3 })
  const ten = await evaluateClassification((s) => enc.encode(s), set)
  await enc.close()
  t.ok(Math.abs(three.accuracy - best.classification![0].accuracy) < 1e-9, 'the saved model’s accuracy over the same three draws')
  t.equal(ten.fits, 10)
  await t.rejects(
    train({ ...TINY_RUN, data, device: 'cpu', out: join(dir, 'bad'), evalExperiments: 0, evalClassification: [sets.classification] }),
    /evalExperiments/,
  )
})
