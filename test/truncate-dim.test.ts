// Matryoshka vectors: SentenceEncoder's truncateDim (and config_sentence_transformers.json's truncate_dim, and
// `simcsepp encode --truncate-dim`) keeps the first values of each vector, normalised after the cut when asked.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SentenceEncoder } from '../lib/index.js'
import { cli, jsonVectors, needsCli, WORDS, writeStsFile } from './helpers/train-corpus.js'
import { writeBeir } from './helpers/beir-folder.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'

const texts = ['the cat sat on the mat', 'a dog runs fast', '']

t.test('truncateDim: the first k values, normalised after the cut; from config_sentence_transformers.json too', async (t) => {
  const dir = await saveTinyModel({ config: { hiddenSize: 64, numAttentionHeads: 2 } })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const full = await SentenceEncoder.load(dir, { device: 'cpu' })
  const want = await full.encode(texts)
  await full.close()
  t.equal(want[0].length, 64)

  const cut = await SentenceEncoder.load(dir, { device: 'cpu', truncateDim: 16 })
  t.equal(cut.dimension, 16, 'dimension is the kept width')
  const got = await cut.encode(texts)
  t.same(
    got,
    want.map((v) => v.slice(0, 16)),
    'the first 16 values of each vector, bit for bit',
  )
  await cut.close()

  const unit = await SentenceEncoder.load(dir, { device: 'cpu', truncateDim: 16, normalize: true })
  const normed = await unit.encode(texts)
  await unit.close()
  for (const [i, v] of normed.entries()) {
    const norm = Math.hypot(...v)
    const ratio = want[i][0] / v[0]
    t.ok(Math.abs(norm - 1) < 1e-6, `sentence ${i}: unit length after the cut (${norm.toFixed(7)})`)
    t.ok(
      v.every((x, k) => Math.abs(x * ratio - want[i][k]) <= 1e-6 * Math.max(1, Math.abs(want[i][k]))),
      `sentence ${i}: the cut scaled`,
    )
  }

  // sentence-transformers >= 3 saves its truncate_dim in config_sentence_transformers.json: the default here too.
  writeFileSync(join(dir, 'config_sentence_transformers.json'), JSON.stringify({ prompts: {}, truncate_dim: 8 }))
  const fromConfig = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.equal(fromConfig.dimension, 8, "the folder's truncate_dim")
  t.same(
    await fromConfig.encode(texts),
    want.map((v) => v.slice(0, 8)),
  )
  await fromConfig.close()
  const untouched = await SentenceEncoder.load(dir, { device: 'cpu', truncateDim: null })
  t.equal(untouched.dimension, 64, 'truncateDim: null keeps every value')
  await untouched.close()

  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu', truncateDim: 65 }), /truncateDim 65 is more than the model's 64 dimensions/)
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu', truncateDim: 0 }), /truncateDim must be a positive integer or null, got 0/)
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu', truncateDim: 2.5 }), /truncateDim must be a positive integer/)
  writeFileSync(join(dir, 'config_sentence_transformers.json'), JSON.stringify({ truncate_dim: 100 }))
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), /truncateDim 100 \(config_sentence_transformers.json\) is more than/)
  writeFileSync(join(dir, 'config_sentence_transformers.json'), JSON.stringify({ truncate_dim: '8' }))
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), /truncate_dim must be a positive integer or null, got "8"/)
})

t.test('simcsepp encode --truncate-dim', needsCli, async (t) => {
  const dir = await saveTinyModel({ config: { hiddenSize: 64, numAttentionHeads: 2 } })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const enc = await SentenceEncoder.load(dir, { device: 'cpu', truncateDim: 12 })
  const want = await enc.encode(texts.slice(0, 2))
  await enc.close()
  const r = spawnSync(process.execPath, [cli, 'encode', '--model', dir, '--device', 'cpu', '--truncate-dim', '12', ...texts.slice(0, 2)], {
    encoding: 'utf8',
  })
  t.equal(r.status, 0, r.stderr)
  t.same(jsonVectors(r.stdout), want, "12 values a line, the encoder's")
  const bad = spawnSync(process.execPath, [cli, 'encode', '--model', dir, '--truncate-dim', '0', 'x'], { encoding: 'utf8' })
  t.not(bad.status, 0)
  t.match(bad.stderr, /truncate-dim/)
})

t.test('simcsepp eval --matryoshka-dims: each size as --truncate-dim scores it, the model run once', needsCli, async (t) => {
  const dir = await saveTinyModel({ config: { hiddenSize: 64, numAttentionHeads: 2 } })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sts = writeStsFile(join(dir, 'sts.tsv'))
  const beir = writeBeir({
    corpus: WORDS.map((w, i) => ({ _id: `d${i}`, text: `${w} ${WORDS[(i + 3) % WORDS.length]} ${WORDS[(i + 5) % WORDS.length]}` })),
    queries: WORDS.slice(0, 6).map((w, i) => ({ _id: `q${i}`, text: w })),
    qrels: WORDS.slice(0, 6)
      .map((_, i) => `q${i}\td${i}\t1\n`)
      .join(''),
  })
  const evalJson = (...flags: string[]) => {
    const r = spawnSync(
      process.execPath,
      [cli, 'eval', '--model', dir, '--device', 'cpu', '--sts', sts, '--retrieval', beir, '--json', ...flags],
      {
        encoding: 'utf8',
      },
    )
    t.equal(r.status, 0, r.stderr)
    return JSON.parse(r.stdout)
  }
  const { matryoshka } = evalJson('--matryoshka-dims', '64,16,8')
  t.same(
    matryoshka.map((m: { dim: number }) => m.dim),
    [64, 16, 8],
  )
  for (const m of matryoshka) {
    const one = evalJson('--truncate-dim', String(m.dim))
    t.ok(Math.abs(m.average - one.average) < 1e-9, `${m.dim}: STS ${m.average.toFixed(4)}, --truncate-dim ${one.average.toFixed(4)}`)
    t.ok(
      Math.abs(m.retrieval[0].ndcgAt10 - one.retrieval[0].ndcgAt10) < 1e-9,
      `${m.dim}: nDCG@10 ${m.retrieval[0].ndcgAt10.toFixed(4)}, --truncate-dim ${one.retrieval[0].ndcgAt10.toFixed(4)}`,
    )
  }
  const table = spawnSync(process.execPath, [cli, 'eval', '--model', dir, '--device', 'cpu', '--sts', sts, '--matryoshka-dims', '32,8'], {
    encoding: 'utf8',
  })
  t.equal(table.status, 0, table.stderr)
  t.match(table.stdout, /^dims +sts\.tsv +average\n[- ]+\n +32 +-?\d+\.\d\d +-?\d+\.\d\d\n +8 /, 'a row per size')
  const both = spawnSync(process.execPath, [cli, 'eval', '--model', dir, '--sts', sts, '--matryoshka-dims', '8', '--truncate-dim', '8'], {
    encoding: 'utf8',
  })
  t.match(both.stderr, /give --truncate-dim or --matryoshka-dims, not both/)
  const over = spawnSync(process.execPath, [cli, 'eval', '--model', dir, '--device', 'cpu', '--sts', sts, '--matryoshka-dims', '65'], {
    encoding: 'utf8',
  })
  t.not(over.status, 0)
  t.match(over.stderr, /dimension 65 is more than the model's 64/)
})
