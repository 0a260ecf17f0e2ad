// Hard-negative mining (lib/data/mine.ts): which corpus sentences become negatives, with vectors chosen by the
// test; triplet files that read back as training data; `simcsepp mine` on a tiny model, its triplets those of
// the library, then trained on.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SentenceEncoder, formatTriplets, formatTuples, mineHardNegatives, tuplesOf, type MinedTriplet } from '../lib/index.js'
import { PairFile } from '../lib/data/pairs.js'
import { cli, needsCli, tinyTrainArgs } from './helpers/train-corpus.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'

// Sentences as unit vectors at these angles (degrees): cos(A, x) = cos(angle of x).
const ANGLES: Record<string, number> = { A: 0, P: 10, n1: 5, n2: 20, n3: 30, n4: 60, n5: 90, B: 180, Q: 170 }
const embed = async (texts: string[]) =>
  texts.map((s) => {
    if (!(s in ANGLES)) throw new Error(`no vector for ${s}`)
    const r = (ANGLES[s] * Math.PI) / 180
    return Float32Array.from([Math.cos(r), Math.sin(r)])
  })
const CORPUS = ['A', 'P', 'n1', 'n2', 'n3', 'n4', 'n5']
const negatives = (r: { triplets: MinedTriplet[] }) => r.triplets.map((x) => x.negative)

t.test('negatives: ranked by similarity, without the anchor and its positives, within the range and margins', async (t) => {
  const pair = [{ anchor: 'A', positive: 'P' }]
  const mine = (o: Parameters<typeof mineHardNegatives>[2] = {}) => mineHardNegatives(embed, pair, { corpus: CORPUS, ...o })
  // After taking out A (the anchor) and P (its positive): n1 (cos 5°, closer than the positive), n2, n3, n4, n5.
  t.same(negatives(await mine()), ['n1', 'n2', 'n3'], 'top 3 by default')
  t.same(negatives(await mine({ numNegatives: 1 })), ['n1'])
  t.same(negatives(await mine({ rangeMin: 1 })), ['n2', 'n3', 'n4'], 'rangeMin 1 skips the closest')
  t.same(negatives(await mine({ rangeMin: 1, rangeMax: 3, numNegatives: 2 })), ['n2', 'n3'], 'ranks [1, 3)')
  t.same(negatives(await mine({ absoluteMargin: 0.1 })), ['n3', 'n4', 'n5'], 'cos <= cos 10° - 0.1 = 0.885')
  t.same(negatives(await mine({ relativeMargin: 0.5 })), ['n5'], 'cos <= cos 10° - 0.5 |cos 10°| = 0.492')
  t.same(negatives(await mine({ maxScore: 0.9 })), ['n3', 'n4', 'n5'], 'cos <= 0.9')
  const none = await mine({ maxScore: -0.5 })
  t.same(none.triplets, [])
  t.equal(none.pairsWithout, 1, 'a pair with no eligible negative is counted')
  const r = await mine()
  t.ok(Math.abs(r.meanPositiveScore - Math.cos(Math.PI / 18)) < 1e-6, `mean positive similarity ${r.meanPositiveScore}`)
  const want = (Math.cos((5 * Math.PI) / 180) + Math.cos((20 * Math.PI) / 180) + Math.cos(Math.PI / 6)) / 3
  t.ok(Math.abs(r.meanNegativeScore - want) < 1e-6, `mean negative similarity ${r.meanNegativeScore}`)
  t.same(r.triplets[0], { anchor: 'A', positive: 'P', negative: 'n1' })

  // 'random': a seeded draw among the eligible candidates (ranks [0, 5)), distinct, by similarity, the same for the
  // same seed.
  const random = (seed: number) => mine({ sampling: 'random', seed, rangeMax: 10 })
  const a = negatives(await random(7))
  t.equal(new Set(a).size, 3, `three distinct negatives: ${a}`)
  t.ok(
    a.every((n) => ['n1', 'n2', 'n3', 'n4', 'n5'].includes(n)),
    'all eligible',
  )
  t.same(
    a,
    [...a].sort((x, y) => ANGLES[x] - ANGLES[y]),
    'ordered by similarity',
  )
  t.same(negatives(await random(7)), a, 'the same seed, the same draw')
  const draws = new Set<string>()
  for (let seed = 0; seed < 20; seed++) draws.add(negatives(await random(seed)).join())
  t.ok(draws.size > 1, `other seeds draw otherwise (${draws.size} draws in 20 seeds)`)
})

t.test("similarityFn 'dot': candidates ranked and filtered by the dot product of the vectors as they are", async (t) => {
  // The unit vectors of the angles, n4 and n5 made 10 and 20 times longer: by dot product they come first.
  const scale: Record<string, number> = { n4: 10, n5: 20 }
  const long = async (texts: string[]) => (await embed(texts)).map((v, i) => v.map((x) => x * (scale[texts[i]] ?? 1)))
  const pair = [{ anchor: 'A', positive: 'P' }]
  const mine = (o: Parameters<typeof mineHardNegatives>[2] = {}) =>
    mineHardNegatives(long, pair, { corpus: CORPUS, similarityFn: 'dot', ...o })
  // Dot products with A: n4 10·cos 60° = 5, n1 cos 5°, n2 cos 20°, n3 cos 30°, n5 20·cos 90° = 0.
  t.same(negatives(await mine({ numNegatives: 4 })), ['n4', 'n1', 'n2', 'n3'], 'by dot product')
  t.same(negatives(await mine({ maxScore: 1, numNegatives: 5 })), ['n1', 'n2', 'n3', 'n5'], 'maxScore in dot-product units')
  const r = await mine({ numNegatives: 1 })
  t.ok(Math.abs(r.meanNegativeScore - 5) < 1e-5, `the scores are dot products (${r.meanNegativeScore})`)
  t.same(negatives(await mineHardNegatives(long, pair, { corpus: CORPUS, numNegatives: 1 })), ['n1'], 'cosine by default')
})

t.test('an anchor paired with several positives never gets one of them as a negative', async (t) => {
  const pairs = [
    { anchor: 'A', positive: 'P' },
    { anchor: 'A', positive: 'n1' },
    { anchor: 'B', positive: 'Q' },
  ]
  const r = await mineHardNegatives(embed, pairs, { corpus: CORPUS, numNegatives: 2 })
  t.same(
    r.triplets.filter((x) => x.anchor === 'A').map((x) => [x.positive, x.negative]),
    [
      ['P', 'n2'],
      ['P', 'n3'],
      ['n1', 'n2'],
      ['n1', 'n3'],
    ],
    "neither P nor n1 is a negative of A's pairs",
  )
  // B (180°) is least like n5 (90°: cos 0), then n4: the closest first. The default corpus: the positives.
  t.same(
    r.triplets.filter((x) => x.anchor === 'B').map((x) => x.negative),
    ['n5', 'n4'],
  )
  const own = await mineHardNegatives(embed, pairs, { numNegatives: 5 })
  t.same(
    own.triplets.map((x) => `${x.anchor}>${x.negative}`),
    ['A>Q', 'A>Q', 'B>P', 'B>n1'],
    "the default corpus is the pairs' positives (P, n1, Q); B (180°) is closer to P (10°) than to n1 (5°)",
  )
  await t.rejects(mineHardNegatives(embed, [], {}), /mineHardNegatives: no pairs/)
  await t.rejects(mineHardNegatives(embed, pairs, { rangeMin: 5, rangeMax: 7 }), /rangeMax must be an integer >= 8, got 7/)
  await t.rejects(mineHardNegatives(embed, pairs, { sampling: 'best' as never }), /sampling must be 'top' or 'random'/)
})

t.test('triplet files read back as training data, awkward sentences included', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-mine-'))
  const triplets = [
    { anchor: 'a, with a comma', positive: 'a "quoted" word', negative: 'two\nlines' },
    { anchor: ' edge spaces ', positive: 'a\ttab', negative: 'plain' },
  ]
  for (const format of ['csv', 'tsv', 'jsonl'] as const) {
    const file = join(dir, `t.${format}`)
    writeFileSync(file, formatTriplets(triplets, format))
    const read = await PairFile.open(file, format)
    t.equal(read.width, 3, `${format}: triplets`)
    const cols = await read.readColumns([0, 1])
    t.same(
      [0, 1].map((i) => ({ anchor: cols[0][i], positive: cols[1][i], negative: cols[2][i] })),
      triplets,
      `${format}: the same sentences back`,
    )
  }
})

t.test('n-tuples: each pair with its first k negatives, pairs with fewer dropped, files that read back', async (t) => {
  const triplets = [
    { anchor: 'a, with a comma', positive: 'p1', negative: 'n1' },
    { anchor: 'a, with a comma', positive: 'p1', negative: 'two\nlines' },
    { anchor: 'a, with a comma', positive: 'p1', negative: 'n3' },
    { anchor: 'a, with a comma', positive: 'p2', negative: 'n1' },
    { anchor: 'a, with a comma', positive: 'p2', negative: 'two\nlines' },
    { anchor: 'b', positive: 'q', negative: 'only one' },
    { anchor: 'c', positive: 'r "quoted"', negative: 'm1' },
    { anchor: 'c', positive: 'r "quoted"', negative: 'm2' },
  ]
  const { tuples, dropped } = tuplesOf(triplets, 2)
  t.same(tuples, [
    { anchor: 'a, with a comma', positive: 'p1', negatives: ['n1', 'two\nlines'] },
    { anchor: 'a, with a comma', positive: 'p2', negatives: ['n1', 'two\nlines'] },
    { anchor: 'c', positive: 'r "quoted"', negatives: ['m1', 'm2'] },
  ])
  t.equal(dropped, 1, "b's one negative is fewer than 2")
  t.equal(tuplesOf(triplets, 3).tuples.length, 1, 'k = 3: only (a, p1) has 3')
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-tuples-'))
  for (const format of ['csv', 'tsv', 'jsonl'] as const) {
    const file = join(dir, `t.${format}`)
    writeFileSync(file, formatTuples(tuples, 2, format))
    const read = await PairFile.open(file, format)
    t.equal(read.width, 4, `${format}: anchor, positive and 2 negatives`)
    const cols = await read.readColumns([0, 1, 2])
    t.same(
      [0, 1, 2].map((i) => ({ anchor: cols[0][i], positive: cols[1][i], negatives: [cols[2][i], cols[3][i]] })),
      tuples,
      `${format}: the same sentences back`,
    )
  }
  t.equal(formatTuples(tuples, 2, 'csv').split('\n')[0], 'anchor,positive,negative_1,negative_2', "sentence-transformers' column names")
})

t.test('simcsepp mine: the library triplets, refusing to overwrite, then trained on', needsCli, async (t) => {
  const model = await saveTinyModel({ seed: 9 })
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-mine-cli-'))
  const pairs = join(dir, 'pairs.csv')
  const rows = [
    ['the cat sat', 'a cat sat on the mat'],
    ['a dog runs', 'the dog runs fast'],
    ['the river is big', 'a big river'],
    ['a red house', 'the house is red'],
    ['green tree', 'a small green tree'],
    ['blue river', 'the river is blue'],
  ]
  writeFileSync(pairs, 'sent0,sent1\n' + rows.map((r) => r.join(',')).join('\n') + '\n')
  const out = join(dir, 'triplets.csv')
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [cli, 'mine', '--model', model, '--device', 'cpu', ...args], { encoding: 'utf8' })
  const r = run('--data', pairs, '--out', out, '--num-negatives', '2', '--range-min', '1')
  t.equal(r.status, 0, r.stderr)
  t.match(r.stderr, /6 pairs -> 12 triplets in .*triplets\.csv; mean similarity to the anchor: positives 0\.\d+, negatives 0\.\d+/)
  const enc = await SentenceEncoder.load(model, { device: 'cpu' })
  const want = await mineHardNegatives(
    (s) => enc.encode(s),
    rows.map(([anchor, positive]) => ({ anchor, positive })),
    { numNegatives: 2, rangeMin: 1 },
  )
  await enc.close()
  t.equal(readFileSync(out, 'utf8'), formatTriplets(want.triplets, 'csv'), "the library's triplets")
  const again = run('--data', pairs, '--out', out)
  t.equal(again.status, 2)
  t.match(again.stderr, /triplets\.csv exists \(pass --overwrite to replace it\)/)
  t.equal(run('--data', pairs, '--out', out, '--overwrite', '--num-negatives', '1').status, 0, '--overwrite')
  t.equal(readFileSync(out, 'utf8').trim().split('\n').length, 7, 'a header and 6 triplets')
  const bad = run('--data', pairs, '--out', join(dir, 'x.txt'))
  t.match(bad.stderr, /--out must end in \.csv, \.tsv or \.jsonl/)
  t.notOk(existsSync(join(dir, 'x.txt')))
  // The triplets train (supervised SimCSE with hard negatives).
  const trained = spawnSync(process.execPath, [cli, ...tinyTrainArgs(out, join(dir, 'run'), 2)], { encoding: 'utf8' })
  t.equal(trained.status, 0, trained.stderr)
  t.match(trained.stderr + trained.stdout, /triplets \(anchor, positive, hard negative\)/)
  // --output-format n-tuple: a row per pair with its 2 negatives, trained on too.
  const tupleFile = join(dir, 'tuples.jsonl')
  const n = run('--data', pairs, '--out', tupleFile, '--num-negatives', '2', '--range-min', '1', '--output-format', 'n-tuple')
  t.equal(n.status, 0, n.stderr)
  t.match(n.stderr, /6 pairs -> 6 4-tuples in .*tuples\.jsonl; mean similarity/)
  const k = 2
  t.equal(readFileSync(tupleFile, 'utf8'), formatTuples(tuplesOf(want.triplets, k).tuples, k, 'jsonl'), "the library's n-tuples")
  const tupleRun = spawnSync(process.execPath, [cli, ...tinyTrainArgs(tupleFile, join(dir, 'tuple-run'), 2)], { encoding: 'utf8' })
  t.equal(tupleRun.status, 0, tupleRun.stderr)
  t.match(tupleRun.stderr + tupleRun.stdout, /6 4-tuples \(anchor, positive, 2 hard negatives\)/)
  t.match(
    run('--data', pairs, '--out', join(dir, 'x.csv'), '--output-format', 'tuples').stderr,
    /--output-format must be one of triplet, n-tuple/,
  )
})
