// `simcsepp encode` output (dist/cli.js): JSON at float32 precision that reads back to the exact
// vectors, JSONL with the sentence, the empty string, and the documented blank-line error of --file.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SentenceEncoder } from '../lib/index.js'
import { cli, jsonVectors, needsCli } from './helpers/train-corpus.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'

const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })

t.test('json and jsonl: the exact float32 vectors, in fewer bytes', needsCli, async (t) => {
  const dir = await saveTinyModel({ config: { hiddenSize: 128 } })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const texts = ['the cat sat on the mat', 'a dog runs fast', '']
  const want = await enc.encode(texts)
  const two = await enc.encode(texts.slice(0, 2)) // batches of other shapes round differently: compare like with like
  await enc.close()

  const r = run('encode', '--model', dir, '--device', 'cpu', ...texts.slice(0, 2))
  t.equal(r.status, 0, r.stderr)
  const rows = r.stdout.trimEnd().split('\n')
  t.same(
    rows.map((l) => Float32Array.from(JSON.parse(l) as number[])),
    two,
    'parses back to the same float32 values',
  )
  const doubles = two.map((v) => JSON.stringify(Array.from(v))).join('\n')
  t.ok(r.stdout.length < doubles.length * 0.7, `two 128-dim vectors: ${r.stdout.length} bytes (17-digit doubles: ${doubles.length})`)

  const l = run('encode', '--model', dir, '--device', 'cpu', '--format', 'jsonl', ...texts)
  t.equal(l.status, 0, l.stderr)
  const objs = l.stdout
    .trimEnd()
    .split('\n')
    .map((x) => JSON.parse(x) as { sentence: string; embedding: number[] })
  t.same(
    objs.map((o) => o.sentence),
    texts,
    'jsonl: the sentence, the empty one included',
  )
  t.same(
    objs.map((o) => Float32Array.from(o.embedding)),
    want,
    'jsonl: the vectors',
  )

  const file = join(dir, 'blank.txt')
  writeFileSync(file, 'a cat\n\nthe mat\n')
  const b = run('encode', '--model', dir, '--device', 'cpu', '--file', file)
  t.equal(b.status, 1)
  t.match(b.stderr, /line 2/, 'a blank line in --file is an error naming it')
  t.equal(b.stdout, '', 'before any output')
})

t.test('tsv: the sentence escaped, then the exact float32 values; no progress bar on a pipe', needsCli, async (t) => {
  const dir = await saveTinyModel({ config: { hiddenSize: 64 } })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const texts = ['the cat\tsat', 'a back\\slash', 'a dog runs fast']
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const want = await enc.encode(texts)
  const lines = sentences(1200, 5)
  const fileWant = await enc.encode(lines)
  await enc.close()

  const r = run('encode', '--model', dir, '--device', 'cpu', '--format', 'tsv', ...texts)
  t.equal(r.status, 0, r.stderr)
  const rows = r.stdout
    .trimEnd()
    .split('\n')
    .map((l) => l.split('\t'))
  t.same(
    rows.map((c) => c.length),
    [65, 65, 65],
    'one column for the sentence and one per dimension: a tab inside a sentence does not split it',
  )
  t.same(
    rows.map((c) => c[0]),
    ['the cat\\tsat', 'a back\\\\slash', 'a dog runs fast'],
    'tab and backslash escaped',
  )
  t.same(
    rows.map((c) => Float32Array.from(c.slice(1).map(Number))),
    want,
    'the values read back as the same float32 vectors',
  )

  // 1,200 lines: enough for the bar on a terminal; stderr here is a pipe, so none, and stdout is all rows.
  const file = join(dir, 'long.txt')
  writeFileSync(file, lines.join('\n') + '\n')
  const f = run('encode', '--model', dir, '--device', 'cpu', '--format', 'tsv', '--file', file)
  t.equal(f.status, 0, f.stderr)
  t.equal(f.stderr, '', 'no progress output when stderr is not a terminal')
  const fileRows = f.stdout.trimEnd().split('\n')
  t.equal(fileRows.length, 1200)
  let worst = 0
  fileRows.forEach((l, i) =>
    l
      .split('\t')
      .slice(1)
      .forEach((x, j) => (worst = Math.max(worst, Math.abs(Number(x) - fileWant[i][j])))),
  )
  t.ok(worst <= 1e-6, `the file's vectors (other batch shapes than the API call: within 1e-6, max ${worst.toExponential(1)})`)
})

t.test("--precision int8: the int8 encoder's vectors; on CUDA an error", needsCli, async (t) => {
  const dir = await saveTinyModel({ config: { hiddenSize: 64 } })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const texts = ['the cat sat on the mat', 'a dog runs fast']
  const enc = await SentenceEncoder.load(dir, { precision: 'int8' })
  const want = await enc.encode(texts)
  await enc.close()
  const r = run('encode', '--model', dir, '--precision', 'int8', ...texts)
  t.equal(r.status, 0, r.stderr)
  t.same(jsonVectors(r.stdout), want)
  const c = run('encode', '--model', dir, '--precision', 'int8', '--device', 'cuda', 'a cat')
  t.equal(c.status, 1)
  t.match(c.stderr, /precision 'int8' runs on the CPU/)
  const bad = run('encode', '--model', dir, '--precision', 'int4', 'a cat')
  t.match(bad.stderr, /--precision must be one of auto, fp32, bf16, int8 \(got "int4"\)/)
})
