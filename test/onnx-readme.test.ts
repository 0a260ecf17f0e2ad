// README's ONNX example runs as written on an export of a tiny mean-pooled model: transformers.js's
// pipeline and onnxruntime-node's sentence_embedding both give SentenceEncoder's cosine similarity.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exportOnnx, SentenceEncoder } from '../lib/index.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'

t.test("the README's ONNX example: transformers.js and onnxruntime-node give the encoder's similarity", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-onnx-readme-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const model = await saveTinyModel({ dir: join(dir, 'simcsepp-demo'), pooling: 'mean', seed: 12 })
  await exportOnnx(model, join(dir, 'simcsepp-demo-onnx'), { normalize: true })

  const readme = readFileSync('README.md', 'utf8')
  const section = readme.slice(readme.indexOf('\n## Exporting to ONNX'))
  const code = /```js\n([\s\S]*?)```/.exec(section)![1]
  // The script lives in the temporary folder: its imports point at this checkout's packages.
  const script = join(dir, 'example.mjs')
  writeFileSync(
    script,
    code
      .replace("from '@huggingface/transformers'", `from ${JSON.stringify(import.meta.resolve('@huggingface/transformers'))}`)
      .replace("from 'onnxruntime-node'", `from ${JSON.stringify(import.meta.resolve('onnxruntime-node'))}`),
  )
  const [dim, viaPipeline, viaOrt] = execFileSync(process.execPath, [script], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  })
    .trim()
    .split(' ')

  const enc = await SentenceEncoder.load(model, { device: 'cpu' })
  t.teardown(() => enc.close())
  const [a, b] = await enc.encode(['A man is playing a guitar.', 'Someone plays an instrument.'])
  const want = enc.similarity(a, b)
  t.equal(Number(dim), enc.dimension)
  t.ok(Math.abs(Number(viaPipeline) - want) <= 1e-4, `transformers.js cosine ${viaPipeline}, SentenceEncoder ${want.toFixed(4)}`)
  t.ok(Math.abs(Number(viaOrt) - want) <= 1e-4, `onnxruntime cosine ${viaOrt}, SentenceEncoder ${want.toFixed(4)}`)
})
