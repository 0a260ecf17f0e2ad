// OnnxEncoder and `simcsepp eval --onnx`: an exported file's vectors through onnxruntime-node, in input order,
// at the export's max length: the fp32 export's within 1e-5 of SentenceEncoder's (the STS scores equal), the q8
// export's near them; bad files and options are clear Errors.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SentenceEncoder, OnnxEncoder } from '../lib/index.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { GraphBuilder } from '../lib/export/graph-builder.js'
import { DataType, encodeModel } from '../lib/export/onnx-model.js'
import { cosineSimilarity } from '../lib/util/vectors.js'
import type * as OnnxEncoderModule from '../lib/embed/onnx-encoder.js'
import { saveTinyModel, sentences, WORDS } from './helpers/encoder-tiny-model.js'
import { cli, needsCli, tempDir } from './helpers/train-corpus.js'

const MAX_LENGTH = 12

async function exported() {
  const model = await saveTinyModel({ dir: tempDir('simcsepp-onnx-encoder-model-'), pooling: 'mean', seed: 21 })
  const out = join(tempDir('simcsepp-onnx-encoder-out-'), 'exported')
  const r = await exportOnnx(model, out, { maxLength: MAX_LENGTH, weights: ['fp32', 'q8'], normalize: true })
  return { model, out, fp32: r.files[0].file, q8: r.files[1].file }
}

t.test("the fp32 export's vectors are SentenceEncoder's, in input order, at the export's max length; q8's near them", async (t) => {
  const { model, fp32, q8 } = await exported()
  // Lengths in no order, one over the max length, so that sorting and truncation both matter.
  const texts = ['a', ...sentences(7, 3, 20), 'the cat', sentences(1, 30, 30)[0]]
  const enc = await SentenceEncoder.load(model, { device: 'cpu', maxLength: MAX_LENGTH, normalize: true })
  t.teardown(() => enc.close())
  const want = await enc.encode(texts)
  const onnx = await OnnxEncoder.load(fp32, { batchSize: 3 })
  t.teardown(() => onnx.close())
  t.equal(onnx.maxLength, MAX_LENGTH, "tokenizer_config.json's model_max_length")
  const got = await onnx.encode(texts)
  t.equal(got.length, texts.length)
  let worst = 0
  for (let i = 0; i < texts.length; i++) for (let k = 0; k < want[i].length; k++) worst = Math.max(worst, Math.abs(got[i][k] - want[i][k]))
  t.ok(worst < 1e-5, `fp32: every vector within ${worst.toExponential(2)} of SentenceEncoder's, sentence by sentence`)
  t.same(await onnx.encode([]), [], 'no sentences, no vectors')

  const quantized = await OnnxEncoder.load(q8)
  t.teardown(() => quantized.close())
  const near = await quantized.encode(texts)
  const distance = Math.max(...near.map((v, i) => 1 - cosineSimilarity(v, want[i])))
  t.ok(distance > 1e-8 && distance < 2e-3, `q8: 1 - cos up to ${distance.toExponential(2)}`)

  const short = await OnnxEncoder.load(fp32, { maxLength: 4 })
  t.teardown(() => short.close())
  const enc4 = await SentenceEncoder.load(model, { device: 'cpu', maxLength: 4, normalize: true })
  t.teardown(() => enc4.close())
  const [a] = await short.encode([texts[1]])
  const [b] = await enc4.encode([texts[1]])
  t.ok(1 - cosineSimilarity(a, b) < 1e-10, 'maxLength overrides the saved one')
})

t.test('bad files and options: clear Errors naming them', async (t) => {
  const { out, fp32 } = await exported()
  const dir = tempDir('simcsepp-onnx-encoder-bad-')
  await t.rejects(OnnxEncoder.load(join(dir, 'nope.onnx')), /OnnxEncoder: .*nope\.onnx: no such file/)
  const lone = join(dir, 'lone.onnx')
  copyFileSync(fp32, lone)
  await t.rejects(OnnxEncoder.load(lone), /has no tokenizer\.json beside lone\.onnx \(not a folder simcsepp export wrote\?\)/)
  const garbage = join(out, 'onnx', 'garbage.onnx')
  writeFileSync(garbage, 'not a model')
  await t.rejects(OnnxEncoder.load(garbage), /garbage\.onnx: onnxruntime cannot load it/)
  // A valid graph without our output: y = Identity(x).
  const g = new GraphBuilder()
  g.output('y', 'x')
  const graph = g.graph('other', [{ name: 'x', elemType: DataType.FLOAT, dims: [2] }], [{ name: 'y', elemType: DataType.FLOAT, dims: [2] }])
  mkdirSync(join(out, 'onnx'), { recursive: true })
  const other = join(out, 'onnx', 'other.onnx')
  writeFileSync(other, encodeModel({ graph, irVersion: 8, opsetVersion: 17, producerName: 'test', producerVersion: '0' }))
  await t.rejects(OnnxEncoder.load(other), /other\.onnx has no sentence_embedding output \(outputs: y\)/)
  await t.rejects(OnnxEncoder.load(fp32, { maxLength: 2 }), /maxLength must be an integer >= 3, got 2/)
  await t.rejects(OnnxEncoder.load(fp32, { batchSize: 0 }), /batchSize must be a positive integer, got 0/)
  await t.rejects(OnnxEncoder.load(fp32, { maxLen: 8 } as object), /unknown option 'maxLen'/)
  await t.rejects(OnnxEncoder.load(42 as unknown as string), /expected the path of an \.onnx file, got 42/)
  const enc = await OnnxEncoder.load(fp32)
  await t.rejects(enc.encode([1] as unknown as string[]), /encode expects an array of strings/)
  await enc.close()
  await t.rejects(enc.encode(['a']), /encode after close\(\)/)
  await enc.close() // twice: nothing happens
})

t.test('without onnxruntime-node: an Error that says how to get it', async (t) => {
  const { fp32 } = await exported()
  const { OnnxEncoder: Mocked } = await t.mockImport<typeof OnnxEncoderModule>('../lib/embed/onnx-encoder.js', {
    '../lib/embed/onnxruntime.js': {
      loadOnnxruntime: async () => "onnxruntime-node not installed (Cannot find package 'onnxruntime-node')",
      onnxFeeds: () => ({}),
    },
  })
  await t.rejects(Mocked.load(fp32), /onnxruntime-node not installed .*: npm install onnxruntime-node to run \.onnx files/)
})

t.test('simcsepp eval --onnx: the fp32 export scores as the model does; misuse is a usage error', needsCli, async (t) => {
  const { model, fp32, q8 } = await exported()
  const sts = join(tempDir('simcsepp-onnx-encoder-sts-'), 'sts.tsv')
  writeFileSync(
    sts,
    Array.from({ length: 24 }, (_, i) =>
      ['g', 'f', 'y', String(i), String(i % 5), WORDS[i % WORDS.length], `${WORDS[(i * 3) % WORDS.length]} ${WORDS[i % 7]}`].join('\t'),
    ).join('\n') + '\n',
  )
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'eval', '--sts', sts, '--json', ...args], { encoding: 'utf8' })
  const score = (args: string[]) => {
    const r = run(...args)
    t.equal(r.status, 0, r.stderr)
    return JSON.parse(r.stdout) as { average: number; averagePearson: number }
  }
  const ours = score(['--model', model, '--device', 'cpu', '--max-len', String(MAX_LENGTH), '--normalize'])
  const theirs = score(['--onnx', fp32])
  t.ok(Math.abs(ours.average - theirs.average) < 1e-9, `Spearman ${theirs.average} (the model: ${ours.average})`)
  t.ok(Math.abs(ours.averagePearson - theirs.averagePearson) < 1e-4, `Pearson ${theirs.averagePearson} (the model: ${ours.averagePearson})`)
  const q = score(['--onnx', q8, '--batch-size', '5'])
  t.ok(Number.isFinite(q.average), `q8: Spearman ${q.average}`)
  for (const [args, message] of [
    [['--onnx', fp32, '--model', model], /eval: give --model DIR or --onnx FILE, not both/],
    [['--onnx', fp32, '--pooling', 'cls'], /eval: --pooling does not apply to --onnx/],
    [['--onnx', fp32, '--device', 'cpu'], /eval: --device does not apply to --onnx/],
    [[], /eval: --model DIR \(or --onnx FILE\) is required/],
  ] as [string[], RegExp][]) {
    const r = run(...args)
    t.equal(r.status, 2, args.join(' '))
    t.match(r.stderr, message)
  }
})
