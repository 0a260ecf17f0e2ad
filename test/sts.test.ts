// STS evaluation: rank correlation, the three file formats, and the evaluation loop.
import t from 'tap'
import { existsSync, promises as fsp } from 'node:fs'
import { join, resolve, dirname } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { spearman, pearson, ranks, readStsFile, evaluateSts, evaluateStsFiles, type StsPair } from '../lib/eval/sts.js'
import { stsTable } from '../lib/cli/tables.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const stsbDev = resolve(repoRoot, '../shared/data/stsb-dev.tsv')
const dir = await fsp.mkdtemp(join(tmpdir(), 'simcsepp-sts-'))
t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))

t.test('spearman with ties (hand-computed) and known values', async (t) => {
  t.same([...ranks([10, 20, 20, 5, 20])], [2, 4, 4, 1, 4], 'tied values share the average rank')
  // b's ranks are [1, 2, 3.5, 5, 3.5]; Pearson with [1..5] = 8 / sqrt(10 × 9.5).
  t.ok(Math.abs(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) - 8 / Math.sqrt(95)) < 1e-12)
  t.ok(Math.abs(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) - 0.8207826816681233) < 1e-12, 'scipy.stats.spearmanr')
  t.equal(spearman([1, 2, 3, 4], [10, 100, 1000, 1e4]), 1, 'monotone, not linear: 1')
  t.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1)
  t.ok(Math.abs(pearson([1, 2, 3], [2, 4, 7]) - 5 / Math.sqrt(2 * (114 / 9))) < 1e-12)
  t.ok(Number.isNaN(spearman([1, 2, 3], [7, 7, 7])), 'constant input: NaN')
  t.throws(() => spearman([1, 2], [1, 2, 3]), RangeError)
  t.throws(() => spearman([1], [1]), RangeError)
})

t.test('STS-B format: first 7 tab-separated columns, extra columns ignored, no quoting', async (t) => {
  const p = join(dir, 'sts-b.tsv')
  await fsp.writeFile(p, 'main-news\tf\t2012\t0001\t4.5\t"A" man.\tA man "is".\textra\tmore\nmain-news\tf\t2012\t0002\t0\tx\ty\n\n')
  t.same(await readStsFile(p), [
    { s1: '"A" man.', s2: 'A man "is".', score: 4.5 },
    { s1: 'x', s2: 'y', score: 0 },
  ])
  const bad = join(dir, 'bad.tsv')
  await fsp.writeFile(bad, 'g\tf\t2012\t1\t3\ta\tb\ng\tf\t2012\t2\t3\tonly six\n')
  await t.rejects(readStsFile(bad), { message: new RegExp(`${bad}:2: expected 7 tab-separated columns`) })
  await fsp.writeFile(bad, 'g\tf\t2012\t1\tthree\ta\tb\n')
  await t.rejects(readStsFile(bad), { message: `${bad}:1: invalid score "three"` })
})

t.test('SICK format: detected by its header', async (t) => {
  const p = join(dir, 'SICK_test_annotated.txt')
  await fsp.writeFile(
    p,
    'pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n' +
      '6\tThere is no boy playing outdoors\tA boy is playing\t3.3\tCONTRADICTION\r\n' +
      '7\tA dog runs\tA dog is running\t4.9\tENTAILMENT\r\n',
  )
  t.same(await readStsFile(p), [
    { s1: 'There is no boy playing outdoors', s2: 'A boy is playing', score: 3.3 },
    { s1: 'A dog runs', s2: 'A dog is running', score: 4.9 },
  ])
  const full = join(dir, 'SICK.txt')
  await fsp.writeFile(full, 'pair_ID\tsentence_A\tsentence_B\trelatedness_score\tSemEval_set\n1\ta\tb\t2\tTRAIN\n2\tc\td\t3\tTEST\n')
  t.same(await readStsFile(full, { sickSet: 'TEST' }), [{ s1: 'c', s2: 'd', score: 3 }], 'sickSet keeps one split')
  t.equal((await readStsFile(full)).length, 2)
})

t.test('STS12–16 format: input/gs pairs by subset, sorted, unscored pairs skipped', async (t) => {
  const d = join(dir, 'STS13-en-test')
  await fsp.mkdir(d)
  await fsp.writeFile(join(d, 'STS.input.OnWN.txt'), 'o1\to2\nu1\tu2\no3\to4\textra\n')
  await fsp.writeFile(join(d, 'STS.gs.OnWN.txt'), '1.5\n\n4\n')
  await fsp.writeFile(join(d, 'STS.input.FNWN.txt'), 'f1\tf2\n')
  await fsp.writeFile(join(d, 'STS.gs.FNWN.txt'), '2.8\n')
  await fsp.writeFile(join(d, 'LICENSE.txt'), 'not an input file\n')
  const want: StsPair[] = [
    { s1: 'f1', s2: 'f2', score: 2.8 },
    { s1: 'o1', s2: 'o2', score: 1.5 },
    { s1: 'o3', s2: 'o4', score: 4 },
  ]
  t.same(await readStsFile(d), want, 'subsets concatenated in sorted order (FNWN before OnWN)')
  t.same(await readStsFile(join(d, 'STS.input.OnWN.txt')), want.slice(1), 'one subset by its input file')

  const d16 = join(dir, 'STS16')
  await fsp.mkdir(d16)
  await fsp.writeFile(join(d16, 'STS2016.input.answer-answer.txt'), 'a\tb\n')
  await fsp.writeFile(join(d16, 'STS2016.gs.answer-answer.txt'), '5\n')
  t.same(await readStsFile(d16), [{ s1: 'a', s2: 'b', score: 5 }], "SentEval's STS2016.* names")

  const broken = join(dir, 'broken')
  await fsp.mkdir(broken)
  await fsp.writeFile(join(broken, 'STS.input.x.txt'), 'a\tb\nc\td\n')
  await fsp.writeFile(join(broken, 'STS.gs.x.txt'), '1\n')
  await t.rejects(readStsFile(broken), { message: /2 lines but STS\.gs\.x\.txt has 1/ })
  await fsp.writeFile(join(broken, 'STS.gs.x.txt'), '1\n2\n')
  await fsp.writeFile(join(broken, 'STS.input.x.txt'), 'a\tb\nno tab\n')
  await t.rejects(readStsFile(broken), { message: new RegExp(`STS\\.input\\.x\\.txt:2: expected sentence1<TAB>sentence2`) })
  await fsp.rm(join(broken, 'STS.gs.x.txt'))
  await t.rejects(readStsFile(broken), { message: /STS\.gs\.x\.txt: cannot read/ })
  const empty = join(dir, 'emptydir')
  await fsp.mkdir(empty)
  await t.rejects(readStsFile(empty), { message: /no STS\.input/ })
  await t.rejects(readStsFile(join(dir, 'missing.tsv')), { message: /no such file/ })
})

const noShared = existsSync(stsbDev) ? false : `${stsbDev} not found (../shared/data is absent outside the development checkout)`
if (noShared) t.comment(`skipping the real STS-B dev test: ${noShared}`)
t.test('the real STS-B dev split', { skip: noShared }, async (t) => {
  const pairs = await readStsFile(stsbDev)
  t.equal(pairs.length, 1500)
  t.ok(
    pairs.every((p) => p.score >= 0 && p.score <= 5 && p.s1.length > 0 && p.s2.length > 0),
    'scores in [0, 5], sentences non-empty',
  )
  t.same(pairs[0], { s1: 'A man with a hard hat is dancing.', s2: 'A man wearing a hard hat is dancing.', score: 5 })
})

t.test('evaluateSts: cosine vs gold, Spearman ×100, each sentence embedded once', async (t) => {
  // Sentence "a<k>" and "b<k>" embed to unit vectors at angle (5 − score)·0.3 rad: the cosine is a
  // decreasing function of the angle, so increasing in the gold score, and Spearman must be 100.
  const scores = [0, 1.2, 2.5, 2.5, 3.8, 5, 4.1, 0.4]
  const pairs = scores.map((score, k) => ({ s1: `a${k}`, s2: `b${k}`, score }))
  pairs.push({ s1: 'a0', s2: 'b0', score: 0 }) // repeated pair
  const angle = new Map(scores.map((s, k) => [`b${k}`, (5 - s) * 0.3]))
  const calls: string[][] = []
  const embed = async (sentences: string[]) => {
    calls.push(sentences)
    return sentences.map((s) => {
      const a = s.startsWith('a') ? 0 : angle.get(s)!
      return Float32Array.of(3 * Math.cos(a), 3 * Math.sin(a), 0)
    })
  }
  const r = await evaluateSts(embed, pairs, { batchSize: 5 })
  t.equal(r.pairs, 9)
  t.ok(Math.abs(r.spearman - 100) < 1e-9, `Spearman ${r.spearman}`)
  const embedded = calls.flat()
  t.equal(embedded.length, 16, 'each distinct sentence once')
  t.equal(new Set(embedded).size, 16)
  t.ok(
    calls.every((c) => c.length <= 5),
    'in batches of batchSize',
  )
  await t.rejects(
    evaluateSts(async (s) => s.slice(1).map(() => new Float32Array(3)), pairs),
    { message: /returned/ },
  )
})

t.test('evaluateStsFiles and stsTable', async (t) => {
  const a = join(dir, 'a.tsv')
  const b = join(dir, 'b.tsv')
  await fsp.writeFile(a, 'g\tf\ty\t1\t1\tx\ty\ng\tf\ty\t2\t4\tx\tx\n')
  await fsp.writeFile(b, 'g\tf\ty\t1\t4\tx\ty\ng\tf\ty\t2\t1\tx\tx\ng\tf\ty\t3\t2\tx\tz\n')
  const vec: Record<string, number[]> = { x: [1, 0], y: [0.6, 0.8], z: [0, 1] }
  const r = await evaluateStsFiles(async (s) => s.map((w) => Float32Array.from(vec[w])), [a, b])
  t.same(
    r.results.map((x) => [x.file, x.pairs]),
    [
      [a, 2],
      [b, 3],
    ],
  )
  t.equal(r.results[0].spearman, 100)
  t.equal(r.results[1].spearman, -50)
  t.equal(r.average, 25)
  t.equal(r.results[0].pearson, 100)
  t.ok(Math.abs(r.results[1].pearson - 100 * pearson([0.6, 1, 0], [4, 1, 2])) < 1e-4, `Pearson ${r.results[1].pearson}`)
  t.equal(r.averagePearson, (r.results[0].pearson + r.results[1].pearson) / 2)
  const table = stsTable(r)
  t.match(table, /^file\s+pairs\s+Spearman\s+Pearson\n/)
  t.match(table, /a\.tsv\s+2\s+100\.00\s+100\.00\n/)
  t.match(table, /b\.tsv\s+3\s+-50\.00\s+-21\.68\n/)
  t.match(table, /average\s+25\.00\s+39\.16$/)
})

t.test('an STS12-16 folder: the "all" setting, each subset, and their mean; each sentence embedded once', async (t) => {
  const d = join(dir, 'STS12-all')
  await fsp.mkdir(d)
  // Subset A ranks perfectly; subset B inversely; concatenated, the scores of A dominate.
  await fsp.writeFile(join(d, 'STS.input.A.txt'), 'x\tx\nx\ty\nx\tz\n')
  await fsp.writeFile(join(d, 'STS.gs.A.txt'), '5\n3\n1\n')
  await fsp.writeFile(join(d, 'STS.input.B.txt'), 'y\ty\ny\tz\n')
  await fsp.writeFile(join(d, 'STS.gs.B.txt'), '0\n4\n')
  const vec: Record<string, number[]> = { x: [1, 0], y: [0.6, 0.8], z: [0, 1] }
  const embedded: string[] = []
  const embed = async (s: string[]) => (embedded.push(...s), s.map((w) => Float32Array.from(vec[w])))
  const r = await evaluateStsFiles(embed, [d])
  const [f] = r.results
  t.equal(f.setting, 'all')
  t.equal(f.pairs, 5)
  const sims = [1, 0.6, 0, 1, 0.8],
    gold = [5, 3, 1, 0, 4]
  t.ok(Math.abs(f.spearman - 100 * spearman(sims, gold)) < 1e-4, `all: one Spearman over the 5 pairs (${f.spearman})`)
  t.ok(Math.abs(f.pearson - 100 * pearson(sims, gold)) < 1e-4)
  t.same(
    f.subsets!.map((s) => [s.subset, s.pairs, s.spearman]),
    [
      ['A', 3, 100],
      ['B', 2, -100],
    ],
  )
  t.equal(f.mean!.spearman, 0, 'the mean of the subsets differs from "all"')
  t.equal(new Set(embedded).size, embedded.length, 'each sentence embedded once for "all" and the subsets')
  const table = stsTable(r)
  t.match(table, /STS12-all \(all\)\s+5\s/)
  t.match(table, /\n {2}A\s+3\s+100\.00/)
  t.match(table, /\n {2}mean of subsets\s+0\.00/)
})

t.test('scored pairs as training reads them (sentence1, sentence2, score) are an STS file too', async (t) => {
  const want = [
    { s1: 'a man, smiling', s2: 'a man smiles', score: 4.5 },
    { s1: 'a cat', s2: 'the stock market', score: 0 },
  ]
  const files: [string, string][] = [
    ['dev.csv', 'sentence1,sentence2,score\n"a man, smiling",a man smiles,4.5\na cat,the stock market,0\n'],
    ['dev.tsv', 'score\tsentence1\tsentence2\n4.5\ta man, smiling\ta man smiles\n0\ta cat\tthe stock market\n'],
    ['dev.jsonl', want.map((p) => JSON.stringify({ sentence1: p.s1, sentence2: p.s2, score: p.score })).join('\n') + '\n'],
  ]
  for (const [name, text] of files) {
    const path = join(dir, name)
    await fsp.writeFile(path, text)
    t.same(await readStsFile(path), want, name)
  }
  // The STS-B distribution's sts-dev.csv: tab-separated, no header; still read as STS-B.
  const stsb = join(dir, 'sts-dev.csv')
  await fsp.writeFile(
    stsb,
    'main-captions\tMSRvid\t2012test\t0000\t5.000\tA man with a hard hat is dancing.\tA man wearing a hard hat is dancing.\n',
  )
  t.same(await readStsFile(stsb), [{ s1: 'A man with a hard hat is dancing.', s2: 'A man wearing a hard hat is dancing.', score: 5 }])
  const bad = join(dir, 'bad.csv')
  await fsp.writeFile(bad, 'sentence1,sentence2,score\na,b,high\n')
  await t.rejects(readStsFile(bad), /bad\.csv: line 2: the score "high" is not a finite number/)
})
