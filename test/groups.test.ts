// FlagEmbedding's grouped JSONL (query, pos [...], neg [...]): checked on reading, each example drawn every epoch
// as (query, a random positive, k negatives without replacement, from the list repeated when it is shorter),
// the draw a function of (seed, epoch, example) so that batches after a resume are the same, and a run on it.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { GroupFile, isGroupedFile } from '../lib/data/groups.js'
import { PairFile } from '../lib/data/pairs.js'
import { BatchStream } from '../lib/data/sentences.js'
import { train } from '../lib/train/train.js'
import { tempDir, TINY_RUN, WORDS } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-groups-')
const write = (name: string, text: string) => {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

/** `count` groups of the small grammar: a query, 1-3 positives and 2-9 negatives (FlagEmbedding's keys, and more). */
function groups(count: number): { query: string; pos: string[]; neg: string[] }[] {
  let s = 7
  const rnd = (n: number) => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % n
  const sentence = () => Array.from({ length: 3 + rnd(5) }, () => WORDS[rnd(WORDS.length)]).join(' ')
  return Array.from({ length: count }, (_, i) => ({
    query: `${sentence()} ${i}`,
    pos: Array.from({ length: 1 + (i % 3) }, sentence),
    neg: Array.from({ length: 2 + (i % 8) }, (_, k) => `${sentence()} n${i}.${k}`),
  }))
}
const data = groups(30)
const file = write(
  'bge.jsonl',
  data.map((g, i) => JSON.stringify({ ...g, prompt: 'Represent this: ', pos_scores: [1], type: `t${i}` })).join('\n') + '\n',
)

t.test('a grouped file: detected by its keys, read whole, described', async (t) => {
  t.ok(await isGroupedFile(file), 'query and a pos list: grouped')
  t.notOk(await isGroupedFile(write('pairs.jsonl', '{"anchor":"a","positive":"b"}\n')), 'anchor/positive: not grouped')
  const long = { query: 'q', pos: ['p'], neg: Array.from({ length: 400 }, (_, i) => `a long passage ${i} `.repeat(20)) }
  t.ok(await isGroupedFile(write('long.jsonl', JSON.stringify(long) + '\n')), 'a first line longer than the 64 KiB peek')
  const g = await GroupFile.open(file, 3, 42)
  t.equal(g.count, 30)
  t.equal(g.width, 5)
  t.match(
    g.describe(),
    /30 groups \(query, 1-3 positives, 2-9 hard negatives\), each drawn every epoch as 5-tuple \(anchor, positive, 3 hard negatives\), read as jsonl/,
  )
  t.same(g.textsOf(4), [data[4].query, ...data[4].pos, ...data[4].neg])
})

t.test('malformed groups are refused with the line and the key', async (t) => {
  const cases: [string, RegExp][] = [
    ['{"query":"q","pos":["p"],"neg":["n"]}\n{"query":"","pos":["p"],"neg":["n"]}\n', /line 2: query must be a non-empty string/],
    ['{"query":"q","pos":[],"neg":["n"]}\n', /line 1: pos must be a non-empty list of non-empty strings/],
    [
      '{"query":"q","pos":["p"],"neg":[]}\n',
      /line 1: neg must be a non-empty list of non-empty strings \(examples without hard negatives train as pairs/,
    ],
    ['{"query":"q","pos":["p"],"neg":["n", 3]}\n', /line 1: neg must be a non-empty list/],
    ['{"query":"q","pos":["p"],"neg":["n"]}\nnot json\n', /line 2 is not JSON/],
  ]
  for (const [i, [text, error]] of cases.entries()) await t.rejects(GroupFile.open(write(`bad${i}.jsonl`, text), 3, 1), error)
})

t.test('draws: a positive of the group, k negatives without replacement (repeated only when fewer), fixed by seed and epoch', async (t) => {
  const k = 4
  const g = await GroupFile.open(file, k, 42)
  const again = await GroupFile.open(file, k, 42)
  const other = await GroupFile.open(file, k, 43)
  let changedByEpoch = 0,
    changedBySeed = 0
  const positiveCounts = [0, 0, 0]
  const wrong: string[] = []
  for (let i = 0; i < g.count; i++)
    for (let epoch = 0; epoch < 40; epoch++) {
      const drawn = g.draw(i, epoch)
      const [query, positive, ...negatives] = drawn
      const at = `example ${i}, epoch ${epoch}`
      if (query !== data[i].query) wrong.push(`${at}: query`)
      if (!data[i].pos.includes(positive)) wrong.push(`${at}: a positive of another group`)
      if (data[i].pos.length === 3) positiveCounts[data[i].pos.indexOf(positive)]++
      if (negatives.length !== k || !negatives.every((n) => data[i].neg.includes(n)))
        wrong.push(`${at}: negatives ${negatives.join(' | ')}`)
      // Without replacement from the list repeated ceil(k / |neg|) times.
      const most = Math.max(...data[i].neg.map((n) => negatives.filter((x) => x === n).length))
      if (most > Math.ceil(k / data[i].neg.length)) wrong.push(`${at}: a negative ${most} times`)
      if (again.draw(i, epoch).join('|') !== drawn.join('|')) wrong.push(`${at}: another draw from the same seed`)
      if (epoch > 0 && drawn.join('|') !== g.draw(i, epoch - 1).join('|')) changedByEpoch++
      if (other.draw(i, epoch).join('|') !== drawn.join('|')) changedBySeed++
    }
  t.same(wrong, [], 'every draw: the query, a positive of the group, k of its negatives (distinct when it has k), reproducible')
  t.ok(changedByEpoch > 0.8 * g.count * 39, `a new draw each epoch (${changedByEpoch} of ${g.count * 39} changed)`)
  t.ok(changedBySeed > 0.8 * g.count * 40, `another seed, other draws (${changedBySeed})`)
  // 10 groups with 3 positives, 40 epochs: 400 draws, each positive expected 133 times.
  t.ok(
    positiveCounts.every((c) => c > 90 && c < 180),
    `positives drawn uniformly: ${positiveCounts.join(', ')}`,
  )
})

t.test("a stream's batches carry each example's draw for their epoch, the same after a resume", async (t) => {
  const g = await GroupFile.open(file, 2, 5)
  const whole = new BatchStream(g, { batchSize: 8, seed: 5, prefetch: false })
  const batches = []
  for (let b = 0; b < 8; b++) batches.push(await whole.next())
  for (const batch of batches) {
    const want = Array.from(batch.indices, (i) => g.draw(i, batch.epoch))
    t.same(
      batch.columns,
      [0, 1, 2, 3].map((c) => want.map((w) => w[c])),
    )
    t.same(batch.sentences, batch.columns![0])
  }
  t.ok(
    batches.some((b) => b.epoch === 1),
    'the stream ran into a second epoch',
  )
  const resumed = new BatchStream(g, {
    batchSize: 8,
    seed: 5,
    prefetch: false,
    start: { epoch: batches[5].epoch, index: batches[5].index },
  })
  for (const b of batches.slice(5)) t.same((await resumed.next()).columns, b.columns, `batch at epoch ${b.epoch}, index ${b.index}`)
})

t.test('a run on grouped data: drawn tuples, the option recorded, refused for other data', async (t) => {
  const out = join(dir, 'run')
  const messages: string[] = []
  const r = await train({ ...TINY_RUN, data: file, out, steps: 2, negativesPerExample: 3 }, { onMessage: (m) => void messages.push(m) })
  t.equal(r.steps, 2)
  t.match(messages.join('\n'), /30 groups .* each drawn every epoch as 5-tuple .*: supervised SimCSE with in-batch and hard negatives/)
  t.equal(JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')).negativesPerExample, 3)
  t.match(readFileSync(join(out, 'README.md'), 'utf8'), /30 5-tuples \(anchor, positive, 3 hard negatives\)/)
  const defaults = await train(
    { ...TINY_RUN, data: file, out: join(dir, 'default'), steps: 1 },
    { onMessage: (m) => void messages.push(m) },
  )
  t.equal(defaults.steps, 1)
  t.match(messages.join('\n'), /as 9-tuple \(anchor, positive, 7 hard negatives\)/, "FlagEmbedding's 7 negatives by default")
  const pairs = write('plain-pairs.jsonl', data.map((g) => JSON.stringify({ anchor: g.query, positive: g.pos[0] })).join('\n'))
  await t.rejects(
    train({ ...TINY_RUN, data: pairs, out: join(dir, 'refused'), negativesPerExample: 2 }),
    /train: negativesPerExample needs hard negatives; .*plain-pairs\.jsonl holds pairs \(anchor, positive\)/,
  )
  const text = write('sentences.txt', data.map((g) => g.query).join('\n'))
  await t.rejects(
    train({ ...TINY_RUN, data: text, out: join(dir, 'refused-text'), negativesPerExample: 2 }),
    /train: negativesPerExample applies to supervised data with hard negatives .*sentences\.txt holds sentences/,
  )
  await t.rejects(
    train({ ...TINY_RUN, data: file, out: join(dir, 'zero'), negativesPerExample: 0 }),
    /negativesPerExample must be an integer in \[1, 1024\] \(got 0\)/,
  )
})

t.test('an n-tuple file with negativesPerExample: k of its negatives drawn every epoch', async (t) => {
  const header = ['anchor', 'positive', 'negative_1', 'negative_2', 'negative_3', 'negative_4']
  const rows = data.map((g) => [
    g.query,
    g.pos[0],
    ...g.neg
      .concat(g.neg)
      .slice(0, 4)
      .map((n, k) => `${n} #${k}`),
  ])
  const csv = write('tuples.csv', [header.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n')
  const messages: string[] = []
  const r = await train(
    { ...TINY_RUN, data: csv, out: join(dir, 'tuples'), steps: 2, negativesPerExample: 2 },
    { onMessage: (m) => void messages.push(m) },
  )
  t.equal(r.steps, 2)
  t.match(
    messages.join('\n'),
    /30 6-tuples \(anchor, positive, 4 hard negatives\), 2 of each example's hard negatives drawn every epoch \(4-tuple \(anchor, positive, 2 hard negatives\)\), read as csv/,
  )
  const g = GroupFile.fromTuples(await PairFile.open(csv, 'csv'), 2, 42)
  const wrong: string[] = []
  for (let i = 0; i < g.count; i++)
    for (let epoch = 0; epoch < 10; epoch++) {
      const [anchor, positive, a, b] = g.draw(i, epoch)
      if (anchor !== rows[i][0] || positive !== rows[i][1] || a === b || ![a, b].every((x) => rows[i].slice(2).includes(x)))
        wrong.push(`example ${i}, epoch ${epoch}: ${[anchor, positive, a, b].join(' | ')}`)
    }
  t.same(wrong, [], 'the anchor, the positive and 2 distinct negatives of the example')
  await t.rejects(
    train({ ...TINY_RUN, data: csv, out: join(dir, 'too-many'), negativesPerExample: 5 }),
    /train: negativesPerExample 5 is not in \[1, 4\]: each example of .*tuples\.csv has 4 hard negatives/,
  )
})
