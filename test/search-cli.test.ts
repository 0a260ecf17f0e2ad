// `simcsepp search` (dist/cli.js): the hits of SentenceEncoder.search over the corpus file's non-blank
// lines, as text and as JSON; --help; the usage errors.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SentenceEncoder } from '../lib/index.js'
import { cli, needsCli } from './helpers/train-corpus.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'

const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })

t.test('search prints the nearest corpus sentences per query', needsCli, async (t) => {
  const dir = await saveTinyModel()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const corpus = sentences(60, 5)
  const file = join(dir, 'corpus.txt')
  writeFileSync(file, corpus.slice(0, 10).join('\n') + '\n\n' + corpus.slice(10).join('\n') + '\n') // one blank line, skipped
  const queries = ['the cat sat on the mat', 'a big red house']

  const r = run('search', '--model', dir, '--corpus', file, '--top-k', '3', '--device', 'cpu', '--json', ...queries)
  t.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { query: string; hits: { index: number; score: number; sentence: string }[] }[]
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const want = await enc.search(queries, corpus, { topK: 3 })
  await enc.close()
  t.same(
    out.map((o) => o.query),
    queries,
  )
  for (let q = 0; q < queries.length; q++) {
    t.same(
      out[q].hits.map((h) => h.index),
      want[q].indices,
      `query ${q}: the library's hits`,
    )
    t.same(
      out[q].hits.map((h) => h.sentence),
      want[q].indices.map((i) => corpus[i]),
      'with their sentences',
    )
    t.ok(out[q].hits.every((h, j) => Math.abs(h.score - want[q].scores[j]) < 1e-6))
  }

  const text = run('search', '--model', dir, '--corpus', file, '--device', 'cpu', queries[0])
  t.equal(text.status, 0, text.stderr)
  const lines = text.stdout.trimEnd().split('\n')
  t.equal(lines[0], queries[0])
  t.equal(lines.length, 6, 'the query, then 5 hits (--top-k default)')
  t.match(lines[1], /^\s+-?\d\.\d{4}\s+\[\d+\]\s+\S/)
})

t.test('search --similarity-fn dot ranks by the dot product, as SentenceEncoder with that function', needsCli, async (t) => {
  const dir = await saveTinyModel({ pooling: 'mean', seed: 9 })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const corpus = sentences(30, 6)
  const file = join(dir, 'corpus.txt')
  writeFileSync(file, corpus.join('\n') + '\n')
  const query = 'the cat sat on the mat'
  const r = run('search', '--model', dir, '--corpus', file, '--top-k', '30', '--device', 'cpu', '--similarity-fn', 'dot', '--json', query)
  t.equal(r.status, 0, r.stderr)
  const [out] = JSON.parse(r.stdout) as { hits: { index: number; score: number }[] }[]
  const enc = await SentenceEncoder.load(dir, { device: 'cpu', similarityFn: 'dot' })
  const [q] = await enc.encode([query])
  const vectors = await enc.encode(corpus)
  await enc.close()
  const dots = vectors.map((v) => v.reduce((s, x, i) => s + x * q[i], 0))
  t.same(
    out.hits.map((h) => h.index),
    dots.map((_, i) => i).sort((a, b) => dots[b] - dots[a]),
    'every sentence, by decreasing dot product',
  )
  t.ok(
    out.hits.every((h) => Math.abs(h.score - dots[h.index]) < 1e-4 * Math.max(1, Math.abs(dots[h.index]))),
    'the scores are the dot products',
  )
  t.match(
    run('search', '--model', dir, '--corpus', file, '--similarity-fn', 'l2', query).stderr,
    /--similarity-fn must be one of cosine, dot, euclidean, manhattan/,
  )
})

t.test('search --help and usage errors', needsCli, async (t) => {
  const h = run('search', '--help')
  t.equal(h.status, 0)
  t.ok(h.stdout.startsWith('simcsepp search --model DIR --corpus FILE'))
  t.match(run('--help').stdout, /simcsepp search --model DIR/, 'in the top-level usage')
  t.match(run('search', '--corpus', 'x', 'q').stderr, /search: --model DIR is required/)
  t.match(run('search', '--model', 'm', 'q').stderr, /search: --corpus FILE is required/)
  t.match(run('search', '--model', 'm', '--corpus', 'x').stderr, /search: give at least one query/)
  const k = run('search', '--model', 'm', '--corpus', 'x', '--top-k', '0', 'q')
  t.equal(k.status, 2)
  t.match(k.stderr, /--top-k/)
})

t.test("the README's search example runs", needsCli, async (t) => {
  const dir = await saveTinyModel()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const readme = readFileSync('README.md', 'utf8')
  const code = /```js\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('\n### Searching\n')))![1]
  const script = join(dir, 'example.mjs')
  const dist = join(process.cwd(), 'dist', 'index.js')
  writeFileSync(script, code.replace("from 'simcsepp'", `from ${JSON.stringify(dist)}`).replace("'simcsepp-demo'", JSON.stringify(dir)))
  const out = execFileSync(process.execPath, [script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }).trim()
  const [hits, again, rows, cols] = out.split(' ')
  t.match(hits, /^\d,\d$/, 'two hits')
  t.equal(again, hits, 'the index gives the same hits')
  t.same([rows, cols], ['2', '3'], 'a 2 × 3 similarity matrix')
})
