// Supervised training data from Parquet, the format of Hugging Face datasets: files written by pyarrow (what
// `datasets` writes; test/fixtures/parquet/make.py made them) with snappy, zstd (two row groups) and gzip pages,
// dictionary-encoded and plain columns, read as the same examples; detection by extension and by magic bytes;
// refusals that name the file, the row and the column; a run and `simcsepp mine` on one.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { detectFormat, PairFile } from '../lib/data/pairs.js'
import { readStsFile } from '../lib/eval/sts.js'
import { train } from '../lib/train/train.js'
import { cli, needsCli, tempDir, TINY_RUN } from './helpers/train-corpus.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'

const fixtures = join(process.cwd(), 'test', 'fixtures', 'parquet')
const fixture = (name: string) => join(fixtures, name)
const expected = JSON.parse(readFileSync(fixture('expected.json'), 'utf8')) as {
  anchors: string[]
  positives: string[]
  negatives: string[][]
  scores: number[]
}
const dir = tempDir('simcsepp-parquet-')
const all = (file: PairFile) => file.readColumns(Array.from({ length: file.count }, (_, i) => i))

t.test('pyarrow files read as their columns: snappy, zstd in two row groups, gzip; dictionary and plain pages', async (t) => {
  const { anchors, positives, negatives } = expected
  const cases: [string, string[][], RegExp][] = [
    ['triplets-snappy.parquet', [anchors, positives, negatives[0]], /12 triplets \(anchor, positive, hard negative\), read as parquet/],
    ['tuples-zstd.parquet', [anchors, positives, ...negatives], /12 5-tuples \(anchor, positive, 3 hard negatives\), read as parquet/],
    ['pairs-gzip.parquet', [anchors, positives], /12 pairs \(anchor, positive\), read as parquet/],
  ]
  for (const [name, columns, described] of cases) {
    t.equal(await detectFormat(fixture(name)), 'parquet', `${name}: detected by its extension`)
    const file = await PairFile.open(fixture(name), 'parquet')
    t.same(await all(file), columns, `${name}: the examples, in order (non-ASCII text included)`)
    t.match(file.describe(), described)
  }
  // Without the extension: the magic bytes.
  const bare = join(dir, 'train-00000-of-00001')
  copyFileSync(fixture('triplets-snappy.parquet'), bare)
  t.equal(await detectFormat(bare), 'parquet', 'detected by its first bytes')
})

t.test('what is not text, missing names or a broken file: refused with the file, the row and the column', async (t) => {
  await t.rejects(
    PairFile.open(fixture('null-positive.parquet'), 'parquet'),
    /null-positive\.parquet: row 4: column positive holds no value, not text/,
  )
  await t.rejects(
    PairFile.open(fixture('int-positive.parquet'), 'parquet'),
    /int-positive\.parquet: row 1: column positive holds a number, not text/,
  )
  await t.rejects(
    PairFile.open(fixture('unnamed.parquet'), 'parquet'),
    /unnamed\.parquet: the Parquet columns must be named sent0,sent1\[,hard_neg\] or anchor,positive.* \(found text, label\)/,
  )
  const cut = join(dir, 'cut.parquet')
  const whole = readFileSync(fixture('triplets-snappy.parquet'))
  writeFileSync(cut, whole.subarray(0, whole.length - 100))
  await t.rejects(PairFile.open(cut, 'parquet'), /cut\.parquet: not a readable Parquet file/)
  const text = join(dir, 'text.parquet')
  writeFileSync(text, 'anchor,positive\na,b\n')
  await t.rejects(PairFile.open(text, 'parquet'), /text\.parquet: not a readable Parquet file/)
})

t.test('a run on Parquet n-tuples trains, and records the file it read', async (t) => {
  const out = join(dir, 'run')
  const messages: string[] = []
  const r = await train({ ...TINY_RUN, data: fixture('tuples-zstd.parquet'), out, steps: 2 }, { onMessage: (m) => void messages.push(m) })
  t.equal(r.steps, 2)
  t.match(
    messages.join('\n'),
    /12 5-tuples \(anchor, positive, 3 hard negatives\), read as parquet: supervised SimCSE with in-batch and hard negatives/,
  )
  const args = JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8'))
  t.equal(args.format, 'parquet')
})

t.test('simcsepp mine reads its pairs from Parquet', needsCli, async (t) => {
  const model = await saveTinyModel({ seed: 9 })
  const out = join(dir, 'mined.csv')
  const r = spawnSync(
    process.execPath,
    [cli, 'mine', '--model', model, '--device', 'cpu', '--data', fixture('pairs-gzip.parquet'), '--out', out, '--num-negatives', '1'],
    {
      encoding: 'utf8',
    },
  )
  t.equal(r.status, 0, r.stderr)
  t.match(r.stderr, /12 pairs -> \d+ triplets in .*mined\.csv/)
  const mined = await PairFile.open(out, 'csv')
  t.same((await all(mined))[0].slice(0, 2), expected.anchors.slice(0, 2), 'the anchors of the Parquet pairs')
})

t.test('an STS split in Parquet (sentence-transformers/stsb columns): its pairs, rows without a score skipped', async (t) => {
  const pairs = await readStsFile(fixture('stsb.parquet'))
  const rows = expected.anchors.map((_, i) => i).filter((i) => i !== 3)
  t.same(
    pairs.map((p) => [p.s1, p.s2]),
    rows.map((i) => [expected.anchors[i], expected.negatives[1][i]]),
  )
  t.ok(
    pairs.every((p, k) => Math.abs(p.score - expected.scores[rows[k]]) < 1e-6),
    'the scores (float32)',
  )
  await t.rejects(
    readStsFile(fixture('unnamed.parquet')),
    /unnamed\.parquet: an STS table needs the columns sentence1, sentence2, score or/,
  )
})

t.test('simcsepp eval --sts on a Parquet split', needsCli, async (t) => {
  const model = await saveTinyModel({ seed: 9 })
  const r = spawnSync(process.execPath, [cli, 'eval', '--model', model, '--device', 'cpu', '--sts', fixture('stsb.parquet'), '--json'], {
    encoding: 'utf8',
  })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /"pairs":\s*11/)
})

t.test('encode --file and search --corpus read a Parquet column', needsCli, async (t) => {
  const model = await saveTinyModel({ seed: 9 })
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args, '--model', model, '--device', 'cpu'], { encoding: 'utf8' })
  const fromParquet = run('encode', '--file', fixture('triplets-snappy.parquet'), '--column', 'anchor', '--format', 'jsonl')
  t.equal(fromParquet.status, 0, fromParquet.stderr)
  type Line = { sentence: string; embedding: number[] }
  const jsonl = (stdout: string) =>
    stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line)
  const lines = jsonl(fromParquet.stdout)
  t.same(
    lines.map((l) => l.sentence),
    expected.anchors,
    'a line per row, in order',
  )
  const fromArgs = jsonl(run('encode', '--format', 'jsonl', ...expected.anchors).stdout)
  t.same(
    lines.map((l) => l.embedding),
    fromArgs.map((l) => l.embedding),
    'the vectors of the same sentences given as arguments',
  )
  const which = run('encode', '--file', fixture('triplets-snappy.parquet'))
  t.not(which.status, 0)
  t.match(which.stderr, /which column holds the sentences\? Pass --column NAME \(its columns: anchor, positive, negative, score\)/)
  t.match(
    run('encode', '--file', fixture('triplets-snappy.parquet'), '--column', 'score').stderr,
    /row 1: column score holds a number, not text/,
  )
  const text = join(dir, 'lines.txt')
  writeFileSync(text, 'a b\n')
  t.match(
    run('encode', '--file', text, '--column', 'x').stderr,
    /lines\.txt: --column names a column of a Parquet file or a field of JSON Lines; this is text/,
  )
  const search = run(
    'search',
    '--corpus',
    fixture('stsb.parquet'),
    '--column',
    'sentence2',
    '--top-k',
    '2',
    '--json',
    expected.negatives[1][0],
  )
  t.equal(search.status, 0, search.stderr)
  const hits = JSON.parse(search.stdout)[0].hits as { index: number; sentence: string }[]
  t.equal(hits[0].sentence, expected.negatives[1][0], 'the query itself is the nearest')
  t.equal(hits[0].index, 0)
})
