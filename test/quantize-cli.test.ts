// Quantized vectors from the command line: `simcsepp encode --quantize` (the library's bytes, as text and raw, int8
// with a calibration file's buckets), `simcsepp search --binary` (BinaryIndex's hits) and `simcsepp eval --retrieval
// --binary` (exact, Hamming and rescored rankings of one encoding, each the library's numbers); usage errors.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BinaryIndex, evaluateRetrieval, quantizationRanges, quantizeEmbeddings, readBeirDataset, SentenceEncoder } from '../lib/index.js'
import { cli, needsCli } from './helpers/train-corpus.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'
import { writeBeir } from './helpers/beir-folder.js'

const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })
const runBytes = (...args: string[]) => spawnSync(process.execPath, [cli, ...args])

t.test('encode --quantize: the library’s quantized vectors, as JSON, TSV and raw bytes', needsCli, async (t) => {
  const dir = await saveTinyModel()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const input = sentences(20, 3)
  const file = join(dir, 'in.txt')
  writeFileSync(file, input.join('\n') + '\n')
  const calibration = join(dir, 'cal.txt')
  writeFileSync(calibration, sentences(40, 9).join('\n') + '\n')
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const floats = (await enc.encode(input)) as Float32Array[]
  const ranges = quantizationRanges((await enc.encode(sentences(40, 9))) as Float32Array[])
  await enc.close()

  const ub = run('encode', '--model', dir, '--file', file, '--device', 'cpu', '--quantize', 'ubinary')
  t.equal(ub.status, 0, ub.stderr)
  t.same(
    ub.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l)),
    quantizeEmbeddings(floats, 'ubinary').map((v) => [...v]),
    'ubinary: one JSON array of bytes per line',
  )
  const tsv = run('encode', '--model', dir, '--file', file, '--device', 'cpu', '--quantize', 'binary', '--format', 'tsv')
  t.equal(tsv.status, 0, tsv.stderr)
  t.same(
    tsv.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.split('\t').slice(1).map(Number)),
    quantizeEmbeddings(floats, 'binary').map((v) => [...v]),
    'binary: TSV columns',
  )
  const raw = runBytes(
    'encode',
    '--model',
    dir,
    '--file',
    file,
    '--device',
    'cpu',
    '--quantize',
    'int8',
    '--calibration',
    calibration,
    '--format',
    'bytes',
  )
  t.equal(raw.status, 0, raw.stderr.toString())
  const want = quantizeEmbeddings(floats, 'int8', { ranges })
  t.same(
    [...new Int8Array(raw.stdout.buffer, raw.stdout.byteOffset, raw.stdout.length)],
    want.flatMap((v) => [...v]),
    'int8 bytes, the calibration file’s buckets',
  )
  t.equal(raw.stdout.length, 20 * floats[0].length)

  for (const [args, re] of [
    [['--quantize', 'int8'], /--quantize int8 needs --calibration FILE/],
    [['--quantize', 'ubinary', '--calibration', calibration], /--calibration applies to --quantize int8 and uint8/],
    [['--quantize', 'ubinary', '--format', 'f32'], /--format f32 writes floats; quantized vectors are written raw by --format bytes/],
    [['--format', 'bytes'], /--format bytes writes quantized vectors: give --quantize/],
    [['--quantize', 'int4'], /quantize/],
  ] as [string[], RegExp][]) {
    const r = run('encode', '--model', dir, '--device', 'cpu', 'x', ...args)
    t.equal(r.status, 2, `${args.join(' ')}: a usage error`)
    t.match(r.stderr, re)
    t.equal(r.stdout, '', 'nothing written')
  }
})

t.test('search --binary: BinaryIndex’s hits over the corpus file', needsCli, async (t) => {
  const dir = await saveTinyModel()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const corpus = sentences(80, 5)
  const file = join(dir, 'corpus.txt')
  writeFileSync(file, corpus.join('\n') + '\n')
  const queries = ['the cat sat on the mat', 'a big red house']
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const index = BinaryIndex.from((await enc.encode(corpus)) as Float32Array[])
  const qv = (await enc.encode(queries)) as Float32Array[]
  await enc.close()
  for (const rescore of [undefined, '0', '7']) {
    const r = run(
      'search',
      '--model',
      dir,
      '--corpus',
      file,
      '--top-k',
      '4',
      '--device',
      'cpu',
      '--json',
      '--binary',
      ...(rescore ? ['--rescore', rescore] : []),
      ...queries,
    )
    t.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { hits: { index: number; score: number; sentence: string }[] }[]
    const want = index.search(qv, { topK: 4, ...(rescore ? { rescore: Number(rescore) } : {}) })
    for (let q = 0; q < queries.length; q++) {
      t.same(
        out[q].hits.map((h) => h.index),
        want[q].indices,
        `rescore ${rescore ?? 'default'}, query ${q}: the index's hits`,
      )
      t.same(
        out[q].hits.map((h) => h.score),
        want[q].scores.map(Math.fround),
      )
      t.same(
        out[q].hits.map((h) => h.sentence),
        want[q].indices.map((i) => corpus[i]),
      )
    }
  }
  // --vectors: the corpus encoded once by encode (float32 rows, or their signs as bytes), the same hits as encoding it.
  const f32 = join(dir, 'corpus.f32'),
    ubin = join(dir, 'corpus.ubin')
  writeFileSync(f32, runBytes('encode', '--model', dir, '--file', file, '--device', 'cpu', '--format', 'f32').stdout)
  writeFileSync(
    ubin,
    runBytes('encode', '--model', dir, '--file', file, '--device', 'cpu', '--quantize', 'ubinary', '--format', 'bytes').stdout,
  )
  const searchJson = (...extra: string[]) => {
    const r = run('search', '--model', dir, '--corpus', file, '--top-k', '4', '--device', 'cpu', '--json', ...extra, ...queries)
    t.equal(r.status, 0, r.stderr)
    return JSON.parse(r.stdout)
  }
  t.same(searchJson('--vectors', f32), searchJson(), '--vectors FILE.f32: the hits of encoding the corpus')
  const binaryHits = searchJson('--binary')
  t.same(searchJson('--binary', '--vectors', ubin), binaryHits, '--binary --vectors FILE.ubin: the same')
  t.same(searchJson('--binary', '--vectors', f32), binaryHits, '--binary --vectors FILE.f32: packed as read')
  const wrong = run('search', '--model', dir, '--corpus', file, '--vectors', ubin, '--device', 'cpu', 'q')
  t.equal(wrong.status, 2)
  t.match(wrong.stderr, /--vectors .*corpus\.ubin holds \d+ bytes; the corpus's 80 sentences of \d+ dimensions are \d+ as float32/)
  const bad = run('search', '--model', dir, '--corpus', file, '--rescore', '2', 'q')
  t.equal(bad.status, 2)
  t.match(bad.stderr, /--rescore applies to --binary/)
})

t.test('eval --retrieval --binary: exact, Hamming and rescored rankings, each the library’s', needsCli, async (t) => {
  const model = await saveTinyModel({ seed: 3 })
  t.teardown(() => rmSync(model, { recursive: true, force: true }))
  const docs = sentences(60, 7)
  const beir = writeBeir({
    corpus: docs.map((text, i) => ({ _id: `d${i}`, title: '', text })),
    queries: Array.from({ length: 8 }, (_, q) => ({ _id: `q${q}`, text: docs[q * 7].split(' ').slice(0, 4).join(' ') })),
    qrels: 'query-id\tcorpus-id\tscore\n' + Array.from({ length: 8 }, (_, q) => `q${q}\td${q * 7}\t1\n`).join(''),
  })
  t.teardown(() => rmSync(beir, { recursive: true, force: true }))
  const json = run('eval', '--model', model, '--retrieval', beir, '--device', 'cpu', '--json', '--binary', '--rescore', '3')
  t.equal(json.status, 0, json.stderr)
  const out = JSON.parse(json.stdout).retrieval as { search: string; ndcgAt10: number }[]
  t.same(
    out.map((r) => r.search),
    ['exact', 'binary', 'binary, rescore 3', 'binary, rescore 3 by vectors'],
  )
  const enc = await SentenceEncoder.load(model, { device: 'cpu' })
  const data = await readBeirDataset(beir)
  const embed = (s: string[]) => enc.encode(s) as Promise<Float32Array[]>
  const want = [
    await evaluateRetrieval(embed, data),
    await evaluateRetrieval(embed, data, { binary: { rescore: 0 } }),
    await evaluateRetrieval(embed, data, { binary: { rescore: 3 } }),
    await evaluateRetrieval(embed, data, { binary: { rescore: 3, byVectors: true } }),
  ]
  await enc.close()
  t.same(out, JSON.parse(JSON.stringify(want)), 'the numbers of evaluateRetrieval, each way')
  const table = run('eval', '--model', model, '--retrieval', beir, '--device', 'cpu', '--binary')
  t.equal(table.status, 0, table.stderr)
  const lines = table.stdout.trimEnd().split('\n')
  t.match(lines[0], /^dataset\s+queries\s+docs\s+nDCG@10/)
  t.match(lines[2], /\(test\)\s+8\s+60\s/)
  t.match(lines[3], /^ {2}binary\s+8\s+60\s/)
  t.match(lines[4], /^ {2}binary ×4\s+8\s+60\s/)
  t.match(lines[5], /^ {2}binary ×4, vectors\s+8\s+60\s/)
  t.ok(
    lines.every((l) => l.length <= 80),
    'fits 80 columns',
  )
  for (const [args, re] of [
    [['--retrieval', beir, '--rescore', '2'], /--rescore applies to --binary/],
    [['--sts', join(model, 'none.tsv'), '--binary'], /--binary ranks the documents of --retrieval sets/],
  ] as [string[], RegExp][]) {
    const r = run('eval', '--model', model, ...args)
    t.equal(r.status, 2)
    t.match(r.stderr, re)
  }
})
