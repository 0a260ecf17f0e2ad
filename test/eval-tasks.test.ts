// MTEB's other task kinds in `simcsepp eval`: clustering, pair classification and reranking read from the layouts
// MTEB's datasets use (a row of lists, or a row per item), scored on vectors whose answers are known, and the command
// (tables, JSON, Matryoshka sizes) giving the library's numbers for a model; refusals name the file and the column.
import t from 'tap'
import { spawnSync } from 'node:child_process'
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
  evaluateStsFiles,
  evaluateTranslation,
  readTranslationPairs,
  SentenceEncoder,
} from '../lib/index.js'
import { pairMetrics, pairSimilarities } from '../lib/eval/pair-metrics.js'
import { vMeasure } from '../lib/eval/clustering-metrics.js'
import { subsetsOf } from '../lib/eval/table.js'
import { train } from '../lib/train/train.js'
import { cli, microModel, needsCli, tempDir, WORDS } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-eval-tasks-')
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n'

/** Unit vectors along axis k (of 8), nudged by `e` along axis 7: texts "ax<k>" and "ax<k>'" (nudged). */
const vectorOf = (s: string): Float32Array => {
  const v = new Float32Array(8)
  v[Number(/^ax(\d)/.exec(s)![1])] = 1
  if (s.endsWith("'")) v[7] = 0.3
  return v
}
const axisEmbed = async (texts: string[]) => texts.map(vectorOf)

t.test('clustering: a set per row (MTEB’s lists) or one set of rows; separated groups score 1', async (t) => {
  const lists = join(dir, 'clusters.jsonl')
  writeFileSync(
    lists,
    jsonl([
      { sentences: ['ax0', "ax0'", 'ax1', "ax1'", 'ax2'], labels: ['a', 'a', 'b', 'b', 'c'] },
      { sentences: ['ax3', 'ax4', "ax3'", "ax4'"], labels: [1, 2, 1, 2] },
    ]),
  )
  const data = await readClusteringDataset(lists)
  t.same(
    data.sets.map((s) => s.labels),
    [
      ['a', 'a', 'b', 'b', 'c'],
      ['1', '2', '1', '2'],
    ],
  )
  const r = await evaluateClustering(axisEmbed, data)
  t.same([r.sets, r.texts], [2, 9])
  const events: { done: number; total: number }[] = []
  await evaluateClustering(axisEmbed, data, { onProgress: (p) => events.push(p) })
  t.same(
    events,
    [
      { done: 5, total: 9 },
      { done: 9, total: 9 },
    ],
    'progress: each set as it is embedded',
  )
  const near1 = [r.vMeasure, r.homogeneity, r.completeness].every((x) => Math.abs(x - 1) < 1e-12)
  t.ok(near1, `each group its own cluster: V-measure ${r.vMeasure} (1 but for rounding)`)
  // One text per row (MTEB's fast clustering files): one set. Labels x and y share a vector, z spans two: the three
  // clusters of least inertia are {ax0, ax0}, {ax1, ax1}, {ax2}, neither homogeneous nor complete.
  const flat = join(dir, 'flat.csv')
  writeFileSync(flat, 'text,label\nax0,x\nax0,y\nax1,z\nax1,z\nax2,z\n')
  const f = await evaluateClustering(axisEmbed, await readClusteringDataset(flat))
  const want = vMeasure([0, 1, 2, 2, 2], [0, 0, 1, 1, 2])
  t.same([f.vMeasure, f.homogeneity, f.completeness], [want.vMeasure, want.homogeneity, want.completeness])
  t.ok(
    want.homogeneity < 1 && want.completeness < 1,
    `homogeneity ${want.homogeneity.toFixed(4)}, completeness ${want.completeness.toFixed(4)}`,
  )
  // A folder: its --split.
  mkdirSync(join(dir, 'cl'))
  writeFileSync(join(dir, 'cl', 'test.jsonl'), jsonl([{ sentences: ['ax0', 'ax1'], labels: [0, 1] }]))
  t.equal((await readClusteringDataset(join(dir, 'cl'))).sets[0].texts.length, 2)
  await t.rejects(readClusteringDataset(join(dir, 'cl'), 'dev'), /cl: no dev split/)
  writeFileSync(join(dir, 'uneven.jsonl'), jsonl([{ sentences: ['a', 'b'], labels: [0] }]))
  await t.rejects(readClusteringDataset(join(dir, 'uneven.jsonl')), /uneven\.jsonl: line 1: 2 sentences but 1 labels/)
  writeFileSync(join(dir, 'onelabel.jsonl'), jsonl([{ sentences: ['a', 'b'], labels: [0, 0] }]))
  await t.rejects(readClusteringDataset(join(dir, 'onelabel.jsonl')), /onelabel\.jsonl: one label only: nothing to cluster/)
  writeFileSync(join(dir, 'nolabels.jsonl'), jsonl([{ sentences: ['a', 'b'] }]))
  await t.rejects(
    readClusteringDataset(join(dir, 'nolabels.jsonl')),
    /no labels column \(looked for labels, label; the columns are sentences\)/,
  )
})

t.test('pair classification: lists in one row or a pair per row; four comparisons, the best AP', async (t) => {
  const row = join(dir, 'pairs.jsonl')
  // Paraphrases (1) share an axis; the nudged one is less similar by cosine but still closer than other axes.
  writeFileSync(
    row,
    jsonl([{ sentence1: ['ax0', 'ax1', 'ax2', 'ax3', 'ax4'], sentence2: ["ax0'", 'ax1', 'ax5', 'ax6', "ax4'"], labels: [1, 1, 0, 0, 1] }]),
  )
  const set = await readPairClassificationSet(row)
  t.same([set.first.length, [...set.labels]], [5, [1, 1, 0, 0, 1]])
  const r = await evaluatePairClassification(axisEmbed, set)
  t.same([r.pairs, r.ap, r.bySimilarity.cosine.accuracy, r.bySimilarity.cosine.f1], [5, 1, 1, 1], 'separable: every comparison perfect')
  const s = pairSimilarities(await axisEmbed(set.first), await axisEmbed(set.second))
  t.same(r.bySimilarity.euclidean, pairMetrics(s.euclidean, set.labels, false), 'the Euclidean metrics: pairMetrics of the distances')
  const events: { done: number; total: number }[] = []
  await evaluatePairClassification(axisEmbed, set, { onProgress: (p) => events.push(p) })
  t.same(events.at(-1), { done: 10, total: 10 }, 'progress: both sides of every pair')
  // A pair per row, labels as strings and booleans (a CSV's are strings).
  const flat = join(dir, 'pairs.csv')
  writeFileSync(flat, 'sentence1,sentence2,label\nax0,ax0,1\nax1,ax2,0\nax3,ax3,0\n')
  const f = await evaluatePairClassification(axisEmbed, await readPairClassificationSet(flat))
  t.ok(f.ap < 1 && f.bySimilarity.cosine.accuracy === 2 / 3, `a negative identical pair: AP ${f.ap.toFixed(4)}, accuracy 2/3`)
  writeFileSync(join(dir, 'label2.csv'), 'sentence1,sentence2,label\na,b,2\nc,d,0\n')
  await t.rejects(readPairClassificationSet(join(dir, 'label2.csv')), /label2\.csv: line 2: label must be 0 or 1, got "2"/)
  writeFileSync(join(dir, 'ones.csv'), 'sentence1,sentence2,label\na,b,1\n')
  await t.rejects(readPairClassificationSet(join(dir, 'ones.csv')), /ones\.csv: the labels must include both 0 and 1/)
  writeFileSync(join(dir, 'ragged.jsonl'), jsonl([{ sentence1: ['a', 'b'], sentence2: ['c'], labels: [0, 1] }]))
  await t.rejects(
    readPairClassificationSet(join(dir, 'ragged.jsonl')),
    /ragged\.jsonl: line 1: sentence1, sentence2, labels must be lists of one length/,
  )
})

t.test('reranking: MAP and MRR@10 of each query’s candidates by cosine, with the prefixes', async (t) => {
  const file = join(dir, 'rerank.jsonl')
  writeFileSync(
    file,
    jsonl([
      // Ranked: ax0 (1, relevant), ax0' (0.958), then ax1 (relevant) and ax2 tied at 0, one threshold as scikit-learn
      // counts ties: AP = 1/2 · 1 + 1/2 · 2/4 = 3/4; RR 1.
      { query: 'ax0', positive: ['ax0', 'ax1'], negative: ["ax0'", 'ax2'] },
      // The positive after a nearer negative: AP 1/2, RR 1/2.
      { query: 'ax3', positive: ["ax3'"], negative: ['ax3'] },
      // No negative: skipped, as MTEB does.
      { query: 'ax4', positive: ['ax4'], negative: [] },
    ]),
  )
  const set = await readRerankingSet(file)
  const r = await evaluateReranking(axisEmbed, set)
  t.equal(r.queries, 2)
  t.ok(Math.abs(r.map - (3 / 4 + 1 / 2) / 2) < 1e-12, `MAP ${r.map}`)
  t.ok(Math.abs(r.mrr10 - (1 + 1 / 2) / 2) < 1e-12, `MRR@10 ${r.mrr10}`)
  // Prefixes reach queries and candidates alike.
  const seen: string[] = []
  await evaluateReranking(
    async (texts) => {
      seen.push(...texts)
      return texts.map((s) => vectorOf(s.replace(/^(q|d): /, '')))
    },
    set,
    { queryPrefix: 'q: ', documentPrefix: 'd: ' },
  )
  t.ok(seen.includes('q: ax0') && seen.includes("d: ax0'") && !seen.includes('ax0'), 'queries and candidates prefixed')
  // Progress: every query and distinct candidate once (3 queries, 7 candidates), reported as they are embedded.
  const events: { done: number; total: number }[] = []
  await evaluateReranking(axisEmbed, set, { onProgress: (p) => events.push(p) })
  t.same(events.at(-1), { done: 10, total: 10 })
  t.ok(
    events.every((e, i) => i === 0 || e.done > events[i - 1].done),
    'done rises',
  )
  writeFileSync(join(dir, 'noneg.jsonl'), jsonl([{ query: 'a', positive: ['b'] }]))
  await t.rejects(readRerankingSet(join(dir, 'noneg.jsonl')), /noneg\.jsonl: no negative column \(the columns are query, positive\)/)
})

t.test('simcsepp eval with the five tasks: the library’s numbers, tables, Matryoshka sizes, refusals', needsCli, async (t) => {
  // A micro model trained a few steps (mean pooling), and data from the grammar's words.
  let seed = 9
  const rnd = (k: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % k
  const sentence = (topic: number) => Array.from({ length: 5 }, (_, i) => WORDS[(topic * 7 + rnd(6) + i) % WORDS.length]).join(' ')
  const text = join(dir, 'corpus.txt')
  writeFileSync(text, Array.from({ length: 60 }, (_, i) => sentence(i % 4)).join('\n') + '\n')
  const model = join(dir, 'model')
  await train({
    model: await microModel(dir, 'micro'),
    data: text,
    pooling: 'mean',
    maxLen: 16,
    steps: 2,
    lr: 1e-3,
    batchSize: 16,
    evalEvery: 0,
    saveEvery: 0,
    out: model,
  })

  const cls = join(dir, 'topics')
  mkdirSync(cls)
  writeFileSync(join(cls, 'train.jsonl'), jsonl(Array.from({ length: 40 }, (_, i) => ({ text: sentence(i % 4), label: i % 4 }))))
  writeFileSync(join(cls, 'test.jsonl'), jsonl(Array.from({ length: 20 }, (_, i) => ({ text: sentence(i % 4), label: i % 4 }))))
  const clu = join(dir, 'topics-clustering.jsonl')
  writeFileSync(
    clu,
    jsonl([{ sentences: Array.from({ length: 16 }, (_, i) => sentence(i % 4)), labels: Array.from({ length: 16 }, (_, i) => i % 4) }]),
  )
  const pairs = join(dir, 'topic-pairs.csv')
  writeFileSync(
    pairs,
    'sentence1,sentence2,label\n' +
      Array.from({ length: 16 }, (_, i) => `${sentence(i % 4)},${sentence((i + (i % 2)) % 4)},${1 - (i % 2)}`).join('\n') +
      '\n',
  )
  const rr = join(dir, 'topic-rerank.jsonl')
  writeFileSync(
    rr,
    jsonl(
      Array.from({ length: 6 }, (_, i) => ({
        query: sentence(i % 4),
        positive: [sentence(i % 4)],
        negative: [sentence((i + 1) % 4), sentence((i + 2) % 4)],
      })),
    ),
  )
  const summ = join(dir, 'topic-summaries.jsonl')
  writeFileSync(
    summ,
    jsonl(
      Array.from({ length: 5 }, (_, i) => ({
        human_summaries: [sentence(i % 4), sentence(i % 4)],
        machine_summaries: [sentence(i % 4), sentence((i + 1) % 4), sentence((i + 2) % 4), sentence(i % 4)],
        relevance: [4.5, 1, 2, 3.5],
      })),
    ),
  )
  const args = [
    '--summarization',
    summ,
    '--classification',
    cls,
    '--clustering',
    clu,
    '--pair-classification',
    pairs,
    '--reranking',
    rr,
    '--samples-per-label',
    '4',
    '--experiments',
    '3',
  ]
  const run = (extra: string[]) => spawnSync(process.execPath, [cli, 'eval', '--model', model, ...extra], { encoding: 'utf8' })

  const json = run([...args, '--json'])
  t.equal(json.status, 0, json.stderr)
  const out = JSON.parse(json.stdout)
  const enc = await SentenceEncoder.load(model, { device: 'cpu', precision: 'fp32' })
  const embed = (s: string[]) => enc.encode(s, { prompt: '' }) as Promise<Float32Array[]>
  const want = {
    classification: [await evaluateClassification(embed, await readClassificationSet(cls), { samplesPerLabel: 4, experiments: 3 })],
    clustering: [await evaluateClustering(embed, await readClusteringDataset(clu))],
    pairClassification: [await evaluatePairClassification(embed, await readPairClassificationSet(pairs))],
    reranking: [await evaluateReranking(embed, await readRerankingSet(rr))],
    summarization: [await evaluateSummarization(embed, await readSummarizationSet(summ))],
  }
  await enc.close()
  // MTEB's means: five datasets of five types, so both means are the mean of the five main scores.
  const five = [
    want.classification[0].accuracy,
    want.clustering[0].vMeasure,
    want.pairClassification[0].ap,
    want.reranking[0].map,
    want.summarization[0].cosineSpearman,
  ]
  const fiveMean = five.reduce((a, b) => a + b) / 5
  t.same(out.mean, { datasets: 5, mean: fiveMean, taskTypes: 5, meanByTaskType: fiveMean }, 'Mean (Task) and Mean (TaskType)')
  t.same(JSON.parse(JSON.stringify({ ...want, mean: out.mean })), out, 'the JSON: the library’s results for the model’s vectors')
  t.equal(out.classification[0].fits, 3)

  const table = run(args)
  t.equal(table.status, 0, table.stderr)
  t.match(
    table.stdout,
    /classification +classes +train +test +fits +accuracy +\+- +F1 +F1 weighted\n.*\ntopics +4 +4\/label +20 +3 +\d+\.\d\d/,
  )
  t.match(table.stdout, /clustering +sets +texts +V-measure +homogeneity +completeness\n.*\ntopics-clustering\.jsonl +1 +16 +\d+\.\d\d/)
  t.match(table.stdout, /pair classification +pairs +AP \(max\) +cos AP +cos accuracy +cos F1\n.*\ntopic-pairs\.csv +16 /)
  t.match(table.stdout, /reranking +queries +MAP +MRR@10\n.*\ntopic-rerank\.jsonl +6 /)
  t.match(
    table.stdout,
    /summarization +texts +scored +cos Spearman +cos Pearson +dot Spearman +dot Pearson\n.*\ntopic-summaries\.jsonl +5 +\d /,
  )
  const pct = (x: number) => (100 * x).toFixed(2)
  t.match(
    table.stdout,
    new RegExp(`\\nMean \\(Task\\) +5 datasets +${pct(fiveMean)}\\nMean \\(TaskType\\) +5 task types +${pct(fiveMean)}\\n`),
  )

  const sizes = run([...args, '--matryoshka-dims', '32,8'])
  t.equal(sizes.status, 0, sizes.stderr)
  t.match(
    sizes.stdout,
    /dims +topics accuracy +topics-clustering\.jsonl V-measure +topic-pairs\.csv AP +topic-rerank\.jsonl MAP +topic-summaries\.jsonl cosine Spearman +Mean \(Task\) +Mean \(TaskType\)\n.*\n +32 +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +-?[\d.]+ +-?[\d.]+ +-?[\d.]+\n +8 /,
  )

  // A model whose prompts are keyed by MTEB's task types: each task's texts take its type's prompt (MTEB's lookup), the
  // others the default prompt.
  const cfgPath = join(model, 'config_sentence_transformers.json')
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'))
  writeFileSync(
    cfgPath,
    JSON.stringify({
      ...cfg,
      prompts: { Classification: 'topic of: ', STS: 'how alike: ', BitextMining: 'same meaning: ', s: 'sentence: ' },
      default_prompt_name: 's',
    }),
  )
  const typed = run(['--classification', cls, '--clustering', clu, '--samples-per-label', '4', '--experiments', '3', '--json'])
  t.equal(typed.status, 0, typed.stderr)
  const enc2 = await SentenceEncoder.load(model, { device: 'cpu', precision: 'fp32' })
  const byName = (promptName?: string) => (s: string[]) => enc2.encode(s, promptName ? { promptName } : {}) as Promise<Float32Array[]>
  const wantTyped = {
    classification: [
      await evaluateClassification(byName('Classification'), await readClassificationSet(cls), { samplesPerLabel: 4, experiments: 3 }),
    ],
    clustering: [await evaluateClustering(byName(), await readClusteringDataset(clu))],
  }
  const notTyped = await evaluateClassification(byName(), await readClassificationSet(cls), { samplesPerLabel: 4, experiments: 3 })
  // STS: its "STS" prompt (MTEB's task type), not the default one.
  const stsFile = join(dir, 'topic-sts.tsv')
  writeFileSync(
    stsFile,
    'sentence1\tsentence2\tscore\n' +
      Array.from({ length: 16 }, (_, i) => `${sentence(i % 4)}\t${sentence((i * 3) % 4)}\t${(i * 5) % 6}`).join('\n') +
      '\n',
  )
  const stsTyped = run(['--sts', stsFile, '--json'])
  t.equal(stsTyped.status, 0, stsTyped.stderr)
  const stsWant = await evaluateStsFiles(byName('STS'), [stsFile])
  const stsDefault = await evaluateStsFiles(byName(), [stsFile])
  t.equal(JSON.parse(stsTyped.stdout).results[0].spearman, stsWant.results[0].spearman, 'STS with its "STS" prompt')
  t.not(stsWant.results[0].spearman, stsDefault.results[0].spearman, 'the prompt moves the score')
  // Translation pairs: both sides with the "BitextMining" prompt (MTEB's task type), not bare and not the default one.
  const pairsFile = join(dir, 'topic-pairs-translation.csv')
  writeFileSync(
    pairsFile,
    'english,non_english\n' +
      Array.from({ length: 40 }, (_, i) => {
        const w = (k: number) => WORDS[(i * k + k) % WORDS.length]
        return `${w(1)} ${w(3)} ${w(7)},${w(7)} ${w(3)} ${w(1)} ${w(11)}`
      }).join('\n') +
      '\n',
  )
  const bitext = run(['--translation', pairsFile, '--json'])
  t.equal(bitext.status, 0, bitext.stderr)
  const bitextPairs = await readTranslationPairs(pairsFile)
  const bitextWant = await evaluateTranslation(byName('BitextMining'), bitextPairs)
  t.same(JSON.parse(bitext.stdout).translation, [bitextWant], 'translation with its "BitextMining" prompt')
  const bare = await evaluateTranslation((s) => enc2.encode(s, { prompt: '' }) as Promise<Float32Array[]>, bitextPairs)
  const byDefault = await evaluateTranslation(byName(), bitextPairs)
  t.not(JSON.stringify(bitextWant), JSON.stringify(bare), 'the prompt moves the scores (from no prompt)')
  t.not(JSON.stringify(bitextWant), JSON.stringify(byDefault), 'and from the default prompt')
  await enc2.close()
  // (two datasets of two types: both means are the two scores' mean)
  const two = (wantTyped.classification[0].accuracy + wantTyped.clustering[0].vMeasure) / 2
  Object.assign(wantTyped, { mean: { datasets: 2, mean: two, taskTypes: 2, meanByTaskType: two } })
  t.same(
    JSON.parse(typed.stdout),
    JSON.parse(JSON.stringify(wantTyped)),
    'classification with its "Classification" prompt, clustering with the default',
  )
  t.not(JSON.stringify(notTyped), JSON.stringify(wantTyped.classification[0]), 'the prompt moves the scores')
  // The same through the Matryoshka sizes' memo (48: the whole vector).
  const typedSizes = run([
    '--classification',
    cls,
    '--clustering',
    clu,
    '--samples-per-label',
    '4',
    '--experiments',
    '3',
    '--matryoshka-dims',
    '48',
    '--json',
  ])
  t.equal(typedSizes.status, 0, typedSizes.stderr)
  t.same(
    JSON.parse(typedSizes.stdout).matryoshka[0],
    { dim: 48, ...JSON.parse(JSON.stringify(wantTyped)) },
    'the same with --matryoshka-dims 48',
  )
  writeFileSync(cfgPath, JSON.stringify(cfg))

  t.match(
    run(['--sts', join(dir, 'x.tsv'), '--samples-per-label', '4']).stderr,
    /--samples-per-label and --experiments apply to --classification/,
  )
  t.match(run(['--classification', join(dir, 'nope')]).stderr, /nope: no such file/)
})

t.test('multilingual datasets: a folder per subset, each scored and named, and their means', needsCli, async (t) => {
  const root = join(dir, 'multi')
  // Classification: en/ and de/ folders at the top; clustering: data/fr/ and data/it/ (and a folder without the split).
  const cls = join(root, 'massive')
  for (const [k, lang] of ['de', 'en'].entries()) {
    mkdirSync(join(cls, lang), { recursive: true })
    const rows = (n: number, from: number) =>
      Array.from({ length: n }, (_, i) => ({ text: `${WORDS[(from + i) % WORDS.length]} ${WORDS[(k + i) % 5]}`, label: i % 2 }))
    writeFileSync(join(cls, lang, 'train.jsonl'), jsonl(rows(12, 0)))
    writeFileSync(join(cls, lang, 'test.jsonl'), jsonl(rows(6, 3)))
  }
  const clu = join(root, 'clusters')
  for (const lang of ['fr', 'it']) {
    mkdirSync(join(clu, 'data', lang), { recursive: true })
    writeFileSync(
      join(clu, 'data', lang, 'test.jsonl'),
      jsonl([{ sentences: WORDS.slice(0, 6).map((w) => `${w} ${lang}`), labels: [0, 0, 1, 1, 2, 2] }]),
    )
  }
  mkdirSync(join(clu, 'data', 'notes'))
  writeFileSync(join(clu, 'data', 'notes', 'README.md'), 'not a split\n')
  t.same(subsetsOf(cls, 'test'), [
    { name: 'de', path: join(cls, 'de') },
    { name: 'en', path: join(cls, 'en') },
  ])
  t.same(
    subsetsOf(clu, 'test')?.map((s) => s.name),
    ['fr', 'it'],
    'data/ subfolders holding the split; others left out',
  )
  t.equal(subsetsOf(join(cls, 'en'), 'test'), null, 'a folder with the split itself')
  t.equal(subsetsOf(join(cls, 'en', 'test.jsonl'), 'test'), null, 'a file')
  t.equal(subsetsOf(cls, 'dev'), null, 'no subset has the split')

  const model = await microModel(root, 'micro')
  const run = (extra: string[]) => spawnSync(process.execPath, [cli, 'eval', '--model', model, ...extra], { encoding: 'utf8' })
  const args = ['--classification', cls, '--clustering', clu, '--samples-per-label', '3', '--experiments', '2']
  const json = run([...args, '--json'])
  t.equal(json.status, 0, json.stderr)
  const out = JSON.parse(json.stdout)
  const enc = await SentenceEncoder.load(model, { device: 'cpu', precision: 'fp32' })
  const embed = (s: string[]) => enc.encode(s) as Promise<Float32Array[]>
  const want = {
    classification: await Promise.all(
      ['de', 'en'].map(async (lang) => ({
        ...(await evaluateClassification(embed, await readClassificationSet(join(cls, lang)), { samplesPerLabel: 3, experiments: 2 })),
        dataset: cls,
        subset: lang,
      })),
    ),
    clustering: await Promise.all(
      ['fr', 'it'].map(async (lang) => ({
        ...(await evaluateClustering(embed, await readClusteringDataset(join(clu, 'data', lang)))),
        dataset: clu,
        subset: lang,
      })),
    ),
  }
  await enc.close()
  // MTEB's means count each multilingual dataset once, by its subsets' mean.
  const byDataset = [want.classification.map((r) => r.accuracy), want.clustering.map((r) => r.vMeasure)].map((xs) => (xs[0] + xs[1]) / 2)
  const both = (byDataset[0] + byDataset[1]) / 2
  t.same(out.mean, { datasets: 2, mean: both, taskTypes: 2, meanByTaskType: both })
  t.same(out, JSON.parse(JSON.stringify({ ...want, mean: out.mean })), 'each subset’s result, named by its dataset and subset')
  const table = run(args)
  t.equal(table.status, 0, table.stderr)
  t.match(table.stdout, /\nmassive\/de +2 +3\/label +6 +2 /)
  t.match(table.stdout, /\nclusters\/it +1 +6 /)
  const mean = (xs: number[]) => (100 * (xs[0] + xs[1])) / 2
  t.match(table.stdout, /subsets of +task +subsets +measure +mean/)
  t.match(table.stdout, new RegExp(`massive +classification +2 +accuracy +${mean(want.classification.map((r) => r.accuracy)).toFixed(2)}`))
  t.match(table.stdout, new RegExp(`clusters +clustering +2 +V-measure +${mean(want.clustering.map((r) => r.vMeasure)).toFixed(2)}`))
})
