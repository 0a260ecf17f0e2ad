// Parallel sentences as an evaluation during training (train()'s evalTranslation, `--eval-translation`): each file
// scored at every evaluation as `simcsepp eval --translation` scores it (matching accuracy both ways, MTEB's bitext
// mining F1), the numbers those of evaluateTranslation on the saved model's vectors; selectBy 'translation' selects by
// the first file's F1, and the means count it as one more kind (BitextMining); the log, TensorBoard, card and screen.
import t from 'tap'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { evaluateTranslation, readTranslationPairs, SentenceEncoder } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import { scalarsOf } from '../lib/train/tensorboard.js'
import type { EvalInfo } from '../lib/train/events.js'
import { frontMatterOf } from './helpers/yaml.js'
import { needsCli, runCli, tempDir, TINY_RUN, WORDS, writeSentences, writeStsFile } from './helpers/train-corpus.js'

/** 40 pairs of distinct sentences, each target its source's words reordered with one more. */
function writePairs(path: string): string {
  const rows = Array.from({ length: 40 }, (_, i) => {
    const w = (k: number) => WORDS[(i * k + k) % WORDS.length]
    return `${w(1)} ${w(3)} ${w(7)},${w(7)} ${w(3)} ${w(1)} ${w(11)}`
  })
  writeFileSync(path, ['english,non_english', ...rows].join('\n') + '\n')
  return path
}

t.test('evalTranslation: scored at each evaluation, selecting by bitext mining F1; the numbers are the saved model’s', async (t) => {
  const dir = tempDir('simcsepp-train-translation-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const pairs = writePairs(join(dir, 'pairs.csv'))
  const sts = writeStsFile(join(dir, 'sts.tsv'))
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
      evalFiles: [sts],
      evalTranslation: [pairs],
      selectBy: 'translation',
    },
    { onEval: (e) => void evals.push(e), onMessage: (m) => void messages.push(m) },
  )
  t.ok(
    messages.some((m) => m.includes(`${pairs}: translation, 40 pairs, bitext mining F1 every --eval-every steps`)),
    'says what it scores',
  )
  t.equal(evals.length, 3, 'steps 0, 2, 4')
  for (const e of evals) {
    t.match(e.translation, [{ file: pairs, pairs: 40 }])
    t.equal(e.results.length, 1, 'the STS file is scored too')
    t.same(e.selection, { set: 'pairs.csv', metric: 'f1', score: e.translation![0].f1 })
    const tags = Object.fromEntries(scalarsOf(e))
    t.same(
      [tags['eval/pairs.csv/f1'], tags['eval/pairs.csv/accuracy'], tags['eval/pairs.csv/src2trg_accuracy']],
      [e.translation![0].f1, e.translation![0].accuracy, e.translation![0].sourceToTarget],
      'TensorBoard scalars',
    )
  }
  const best = evals.filter((e) => e.best).at(-1)!
  t.same(result.best, { step: best.step, f1: best.translation![0].f1 }, 'the best: by the first file’s F1')
  for (const e of evals) t.ok(e.translation![0].f1 <= best.translation![0].f1, `step ${e.step} is not better than the best`)
  t.ok(
    evals.some((e) => e.translation![0].accuracy !== best.translation![0].accuracy || e.results[0].spearman !== best.results[0].spearman),
    'another step scored otherwise',
  )

  // The saved model, encoded by SentenceEncoder and scored by the library, gives the best step's numbers.
  const enc = await SentenceEncoder.load(out, { device: 'cpu' })
  const again = await evaluateTranslation((s) => enc.encode(s), await readTranslationPairs(pairs))
  await enc.close()
  for (const k of ['sourceToTarget', 'targetToSource', 'accuracy', 'f1', 'precision'] as const)
    t.ok(Math.abs(again[k] - best.translation![0][k]) < 1e-9, `${k}: ${again[k]}, logged ${best.translation![0][k]}`)

  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, '| sts.tsv | average | pairs.csv bitext mining F1 |')
  t.match(card, `| ${(100 * best.translation![0].f1).toFixed(2)} |`)
  const meta = frontMatterOf(card) as {
    'model-index': { results: { task: { type: string }; dataset: { name: string }; metrics: { type: string; value: number }[] }[] }[]
  } | null
  if (meta) {
    const translation = meta['model-index'][0].results.find((r) => r.task.type === 'translation')!
    t.equal(translation.dataset.name, 'pairs.csv')
    t.same(
      translation.metrics.map((m) => [m.type, m.value]),
      [
        ['src2trg_accuracy', best.translation![0].sourceToTarget],
        ['trg2src_accuracy', best.translation![0].targetToSource],
        ['mean_accuracy', best.translation![0].accuracy],
      ],
      "the model-index: sentence-transformers' translation task, the saved step's numbers",
    )
  }
  t.match(readFileSync(join(out, 'run', 'loss_curve.svg'), 'utf8'), /pairs\.csv bitext mining F1/, 'the plot shows the selecting score')

  // The means: the translation file one more dataset, of its own kind (MTEB's BitextMining).
  const evalsMean: EvalInfo[] = []
  await train(
    {
      ...TINY_RUN,
      data,
      device: 'cpu',
      out: join(dir, 'mean'),
      steps: 1,
      evalEvery: 1,
      evalFiles: [sts],
      evalTranslation: [pairs],
      selectBy: 'mean-type',
    },
    { onEval: (e) => void evalsMean.push(e) },
  )
  for (const e of evalsMean) {
    const want = (e.results[0].spearman / 100 + e.translation![0].f1) / 2
    t.equal(e.selection!.set, '2 sets, 2 kinds')
    t.ok(Math.abs(e.selection!.score - want) < 1e-12, `mean by type ${e.selection!.score}: (Spearman / 100 + F1) / 2`)
  }
  await t.rejects(
    train({ ...TINY_RUN, data, device: 'cpu', out: join(dir, 'none'), evalEvery: 1, evalFiles: [sts], selectBy: 'translation' }),
    /selectBy translation needs evalTranslation/,
  )
})

t.test('evalTranslation of a folder: its validation, dev or else test split', async (t) => {
  const dir = tempDir('simcsepp-train-translation-split-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const rows = readFileSync(writePairs(join(dir, 'pairs.csv')), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
  const folder = join(dir, 'flores')
  mkdirSync(folder)
  writeFileSync(join(folder, 'dev.csv'), ['sentence1,sentence2', ...rows.slice(0, 24)].join('\n') + '\n')
  writeFileSync(join(folder, 'test.csv'), ['sentence1,sentence2', ...rows.slice(24)].join('\n') + '\n')
  const out = join(dir, 'out')
  const evals: EvalInfo[] = []
  const messages: string[] = []
  await train(
    { ...TINY_RUN, data, device: 'cpu', out, steps: 1, evalEvery: 1, evalTranslation: [folder] },
    { onEval: (e) => void evals.push(e), onMessage: (m) => void messages.push(m) },
  )
  t.ok(
    messages.some((m) => m.includes(`${folder} (dev split): translation, 24 pairs`)),
    'the dev split, said',
  )
  const best = evals.filter((e) => e.best).at(-1)!
  t.match(best.translation, [{ file: folder, pairs: 24, split: 'dev' }])
  t.same(best.selection?.set, 'flores (dev)', 'selected by the folder and its split')
  t.equal(Object.fromEntries(scalarsOf(best))['eval/flores_dev/f1'], best.translation![0].f1, 'TensorBoard: the folder and split')
  const enc = await SentenceEncoder.load(out, { device: 'cpu' })
  const again = await evaluateTranslation((s) => enc.encode(s), await readTranslationPairs(join(folder, 'dev.csv')))
  await enc.close()
  t.ok(Math.abs(again.f1 - best.translation![0].f1) < 1e-9, 'the dev split’s F1 with the saved model')

  // A multilingual dataset (a folder per language pair, as MTEB's Tatoeba): each pair scored, selected by their mean.
  const multi = join(dir, 'tatoeba')
  for (const [i, pair] of ['deu-eng', 'fra-eng'].entries()) {
    mkdirSync(join(multi, pair), { recursive: true })
    writeFileSync(join(multi, pair, 'test.csv'), ['sentence1,sentence2', ...rows.slice(20 * i, 20 * i + 20)].join('\n') + '\n')
  }
  const multiOut = join(dir, 'multi')
  const evalsMulti: EvalInfo[] = []
  await train(
    { ...TINY_RUN, data, device: 'cpu', out: multiOut, steps: 1, evalEvery: 1, evalTranslation: [multi] },
    { onEval: (e) => void evalsMulti.push(e) },
  )
  const last = evalsMulti.filter((e) => e.best).at(-1)!
  t.match(last.translation, [
    { file: multi, subset: 'deu-eng', split: 'test', pairs: 20 },
    { file: multi, subset: 'fra-eng', split: 'test', pairs: 20 },
  ])
  const mean = (last.translation![0].f1 + last.translation![1].f1) / 2
  t.same(last.selection, { set: 'tatoeba (test, mean of 2 subsets)', metric: 'f1', score: mean }, 'selected by the pairs’ mean F1')
  const enc2 = await SentenceEncoder.load(multiOut, { device: 'cpu' })
  const fra = await evaluateTranslation((s) => enc2.encode(s), await readTranslationPairs(join(multi, 'fra-eng', 'test.csv')))
  await enc2.close()
  t.ok(Math.abs(fra.f1 - last.translation![1].f1) < 1e-9, 'a pair’s F1 with the saved model')
  const card = readFileSync(join(multiOut, 'README.md'), 'utf8')
  t.match(
    card,
    /name: "tatoeba"\n +type: "tatoeba"\n +split: "test"\n +config: "deu-eng"/,
    'the card: a result per pair, the pair as config',
  )
  t.match(card, /config: "fra-eng"/)
})

t.test('simcsepp train --eval-translation --select-by translation', needsCli, async (t) => {
  const dir = tempDir('simcsepp-train-translation-cli-')
  const data = writeSentences(join(dir, 'data.txt'), 20)
  const pairs = writePairs(join(dir, 'pairs.csv'))
  const r = runCli([
    'train',
    ...['--config', 'tiny', '--batch-size', '8', '--max-len', '12', '--data', data, '--steps', '2', '--eval-every', '2'],
    ...['--eval-translation', pairs, '--select-by', 'translation', '--out', join(dir, 'out'), '--device', 'cpu'],
  ])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stderr, /step 2: pairs\.csv bitext mining F1 \d+\.\d\d/, 'each evaluation on screen')
  t.match(r.stderr, /best bitext mining F1 \d+\.\d\d at step \d/, 'the summary')
})
