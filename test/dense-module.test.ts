// sentence-transformers Dense modules (LaBSE, the distiluse family): SentenceEncoder applies them after the
// pooling and before the Normalize, as sentence-transformers does (vectors held to float64 products of the
// pooled vectors), the ONNX export puts them in sentence_embedding, training trains and saves them, and what we do
// not implement is an Error rather than vectors that are not the model's. On CUDA (a GPU or the emulator) the vectors are the CPU's.
import t from 'tap'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaStatus, SentenceEncoder } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { encoderCudaBlocker } from '../lib/model/cuda-support.js'
import { readSafetensors, writeSafetensors } from '../lib/safetensors.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { train } from '../lib/train/train.js'
import { checkpointDir } from '../lib/train/run-layout.js'
import { compareWeights } from './helpers/compare-weights.js'
import { BF16_STEP_FLOOR, e2eTolerance } from './helpers/encoder-e2e.mjs'
import { saveTinyModel, sentences, writePoolingConfig } from './helpers/encoder-tiny-model.js'
import { randn } from './helpers/reference.js'
import { tempDir } from './helpers/train-corpus.js'

const TANH = 'torch.nn.modules.activation.Tanh'
const IDENTITY = 'torch.nn.modules.linear.Identity'

interface DenseSpec {
  path: string
  inF: number
  outF: number
  bias: boolean
  activation: string
  seed: number
}

/** Writes a Dense module's folder: config.json and model.safetensors with random weights; returns them. */
async function writeDense(dir: string, d: DenseSpec): Promise<{ w: Float32Array; b: Float32Array | null }> {
  const at = join(dir, d.path)
  mkdirSync(at, { recursive: true })
  writeFileSync(
    join(at, 'config.json'),
    JSON.stringify({ in_features: d.inF, out_features: d.outF, bias: d.bias, activation_function: d.activation }),
  )
  const w = Float32Array.from(randn(d.outF * d.inF, d.seed), (x) => x * 0.3)
  const b = d.bias ? Float32Array.from(randn(d.outF, d.seed + 1), (x) => x * 0.1) : null
  await writeSafetensors(join(at, 'model.safetensors'), {
    'linear.weight': { shape: [d.outF, d.inF], data: w },
    ...(b ? { 'linear.bias': { shape: [d.outF], data: b } } : {}),
  })
  return { w, b }
}

const modules = (extra: { path: string; type: string }[]) =>
  JSON.stringify([
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ...extra.map((m, i) => ({ idx: i + 2, name: String(i + 2), ...m })),
  ])

/** A tiny BERT with mean pooling, Dense 32 -> 24 (tanh), Dense 24 -> 16 (identity, no bias), Normalize. */
async function denseModel() {
  const dir = await saveTinyModel({ seed: 4, dir: tempDir('simcsepp-dense-'), pooling: 'mean' })
  const first = await writeDense(dir, { path: '2_Dense', inF: 32, outF: 24, bias: true, activation: TANH, seed: 8 })
  const second = await writeDense(dir, { path: '3_Dense', inF: 24, outF: 16, bias: false, activation: IDENTITY, seed: 9 })
  writeFileSync(
    join(dir, 'modules.json'),
    modules([
      { path: '2_Dense', type: 'sentence_transformers.models.Dense' },
      { path: '3_Dense', type: 'sentence_transformers.models.Dense' },
      { path: '4_Normalize', type: 'sentence_transformers.models.Normalize' },
    ]),
  )
  return { dir, first, second }
}

/** sentence-transformers' chain in float64 from the encoder's pooled vectors: unit(W2·tanh(W1·x + b1)). */
async function expected(
  dir: string,
  texts: string[],
  first: { w: Float32Array; b: Float32Array | null },
  second: { w: Float32Array },
  maxLength = 128,
) {
  const model = await BertModel.load(dir)
  const enc = await (await Tokenizer.load(dir)).encodeBatch(texts, { maxLength })
  const pooled = model.embed(enc, 'mean').toFloat32Array()
  model.dispose()
  const lin = (x: ArrayLike<number>, w: Float32Array, b: Float32Array | null, inF: number, outF: number) =>
    Float64Array.from({ length: outF }, (_, o) => {
      let s = b ? b[o] : 0
      for (let i = 0; i < inF; i++) s += w[o * inF + i] * x[i]
      return s
    })
  return texts.map((_, k) => {
    const h = lin(pooled.subarray(k * 32, (k + 1) * 32), first.w, first.b, 32, 24).map(Math.tanh)
    const y = lin(h, second.w, null, 24, 16)
    const n = Math.hypot(...y)
    return y.map((v) => v / n)
  })
}

const worst = (a: ArrayLike<number>[], b: ArrayLike<number>[]) => {
  let m = 0
  for (let i = 0; i < a.length; i++) for (let j = 0; j < b[i].length; j++) m = Math.max(m, Math.abs(a[i][j] - b[i][j]))
  return m
}

t.test('SentenceEncoder applies the Dense modules between the pooling and the Normalize', async (t) => {
  const { dir, first, second } = await denseModel()
  const texts = sentences(9, 3, 20)
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.teardown(() => enc.close())
  t.same([enc.dimension, enc.pooling, enc.normalize], [16, 'mean', true])
  const got = await enc.encode(texts, { batchSize: 4 })
  t.ok(
    got.every((v) => v.length === 16),
    'vectors of the last Dense width',
  )
  const d = worst(got, await expected(dir, texts, first, second))
  t.ok(d < 1e-6, `unit(W2·tanh(W1·mean + b1)) within ${d.toExponential(2)}`)
})

t.test('the ONNX export puts the Dense modules in sentence_embedding', async (t) => {
  const { dir } = await denseModel()
  const texts = sentences(5, 11, 12)
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.teardown(() => enc.close())
  const want = await enc.encode(texts)
  const out = join(tempDir('simcsepp-dense-onnx-'), 'x')
  const r = await exportOnnx(dir, out, { maxLength: 32 })
  const { ortRun } = await import('./helpers/onnx-run.js')
  const { out: o } = await ortRun(r.onnxFile, out, texts, r.inputs, 32)
  const emb = o.sentence_embedding
  t.same(emb.dims, [texts.length, 16])
  const rows = texts.map((_, i) => (emb.data as Float32Array).subarray(i * 16, (i + 1) * 16))
  const d = worst(rows, want)
  t.ok(d < 1e-5, `onnxruntime's sentence_embedding within ${d.toExponential(2)} of SentenceEncoder's`)
})

t.test('what is not implemented is an Error naming it, not other vectors', async (t) => {
  const { dir } = await denseModel()
  const dense2 = join(dir, '2_Dense')
  const reject = (what: string, re: RegExp) => t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), re, what)

  writeFileSync(
    join(dense2, 'config.json'),
    JSON.stringify({ in_features: 32, out_features: 24, activation_function: 'torch.nn.modules.activation.ReLU' }),
  )
  await reject('ReLU', /2_Dense\/config\.json: activation_function "torch\.nn\.modules\.activation\.ReLU" is not implemented/)
  writeFileSync(join(dense2, 'config.json'), JSON.stringify({ in_features: 30, out_features: 24, activation_function: TANH }))
  await reject('in_features', /2_Dense\/config\.json: in_features is 30, but the pooling gives it vectors of 32/)
  writeFileSync(join(dense2, 'config.json'), JSON.stringify({ in_features: 32, out_features: 20, activation_function: TANH }))
  await reject('chain', /3_Dense\/config\.json: in_features is 24, but the pooling gives it vectors of 20/)
  writeFileSync(join(dense2, 'config.json'), JSON.stringify({ in_features: 32, out_features: 24, bias: true, activation_function: TANH }))
  await writeSafetensors(join(dense2, 'model.safetensors'), { 'linear.weight': { shape: [24, 31], data: new Float32Array(24 * 31) } })
  await reject('weight shape', /2_Dense\/model\.safetensors: linear\.weight is \[24, 31\], config\.json makes it \[24, 32\]/)
  rmSync(join(dense2, 'model.safetensors'))
  writeFileSync(join(dense2, 'pytorch_model.bin'), 'not a PyTorch file')
  await reject('pickle', /2_Dense\/pytorch_model\.bin: neither a zip archive nor a legacy torch\.save file/)

  await writeDense(dir, { path: '2_Dense', inF: 32, outF: 24, bias: true, activation: TANH, seed: 8 })
  writeFileSync(join(dir, 'modules.json'), modules([{ path: '2_LSTM', type: 'sentence_transformers.models.LSTM' }]))
  await reject('LSTM', /modules\.json lists sentence_transformers\.models\.LSTM \(2_LSTM\): not implemented/)
  writeFileSync(
    join(dir, 'modules.json'),
    modules([
      { path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
      { path: '2_Dense', type: 'sentence_transformers.models.Dense' },
    ]),
  )
  await reject(
    'order',
    /lists sentence_transformers\.models\.Dense \(2_Dense\): not implemented \(a Transformer, a Pooling, Dense modules and a Normalize, in this order, are\)/,
  )
  await t.rejects(
    exportOnnx(dir, join(tempDir('simcsepp-dense-onnx-'), 'y')),
    /exportOnnx: .*modules\.json lists/,
    'the export refuses it too',
  )
})

/** A Dense module's weights as saved in `dir` (linear.weight, linear.bias). */
async function savedDense(dir: string): Promise<{ w: Float32Array; b: Float32Array | null }> {
  const tensors = await readSafetensors(join(dir, 'model.safetensors'))
  return { w: tensors.get('linear.weight')!.data, b: tensors.get('linear.bias')?.data ?? null }
}

t.test('train --model of such a folder trains its Dense modules and saves them; resumed runs end bit for bit', async (t) => {
  const { dir, first, second } = await denseModel()
  const work = tempDir('simcsepp-dense-run-')
  const data = join(work, 'data.txt')
  writeFileSync(data, sentences(24, 2, 6).join('\n') + '\n')
  const base = {
    model: dir,
    data,
    steps: 4,
    batchSize: 6,
    maxLen: 12,
    evalEvery: 0,
    saveEvery: 0,
    lr: 1e-3,
    seed: 3,
    device: 'cpu' as const,
  }
  const said: string[] = []
  const whole = join(work, 'whole')
  await train({ ...base, out: whole }, { onMessage: (s) => said.push(s) })
  t.ok(
    said.some((s) => /its 2 Dense module\(s\) after the pooling \(to 16 dimensions\) are trained with it and saved in the output/.test(s)),
    said.join(' | '),
  )
  const listed = JSON.parse(readFileSync(join(whole, 'modules.json'), 'utf8')) as { path: string; type: string }[]
  t.same(
    listed.map((m) => [m.path, m.type.split('.').at(-1)]),
    [
      ['', 'Transformer'],
      ['1_Pooling', 'Pooling'],
      ['2_Dense', 'Dense'],
      ['3_Dense', 'Dense'],
      ['4_Normalize', 'Normalize'],
    ],
    'the modules in sentence-transformers order, the Normalize kept',
  )
  t.same(JSON.parse(readFileSync(join(whole, '2_Dense', 'config.json'), 'utf8')), {
    in_features: 32,
    out_features: 24,
    bias: true,
    activation_function: TANH,
  })
  // Modules that do not chain are refused before anything is trained, naming the file.
  const bad = await denseModel()
  const badConfig = join(bad.dir, '2_Dense', 'config.json')
  writeFileSync(badConfig, JSON.stringify({ ...JSON.parse(readFileSync(badConfig, 'utf8')), in_features: 31 }))
  await t.rejects(
    train({ ...base, model: bad.dir, out: join(work, 'bad') }),
    /2_Dense\/config\.json: in_features is 31, but the pooling gives it vectors of 32/,
  )
  const card = readFileSync(join(whole, 'README.md'), 'utf8')
  t.match(card, /Pooling: the mean over tokens, then the model's 2 Dense modules \(trained with the encoder\), cosine similarity/)
  t.match(card, /`1_Pooling\/`, `2_Dense\/`, `3_Dense\/`\) and this card/)
  t.notMatch(card, /MLP head/, 'the card names no MLP head')
  const trained = [await savedDense(join(whole, '2_Dense')), await savedDense(join(whole, '3_Dense'))]
  t.equal(trained[1].b, null, 'no bias where the module had none')
  const moved = (a: Float32Array, b: Float32Array) => a.some((v, i) => v !== b[i])
  t.ok(moved(trained[0].w, first.w) && moved(trained[0].b!, first.b!) && moved(trained[1].w, second.w), 'every Dense tensor trained')
  // The saved folder's vectors are the trained chain's (SentenceEncoder reads the module folders written; it cuts
  // sentences at the run's 12 tokens, max_seq_length).
  const texts = sentences(5, 3, 9)
  const enc = await SentenceEncoder.load(whole, { device: 'cpu' })
  t.teardown(() => enc.close())
  t.equal(enc.dimension, 16)
  const d = worst(await enc.encode(texts), await expected(whole, texts, trained[0], trained[1], 12))
  t.ok(d < 1e-6, `the saved model's vectors: unit(W2·tanh(W1·mean + b1)) of the trained weights within ${d.toExponential(2)}`)

  // Stopped after step 2 (its checkpoint holds the Dense parameters and their moments), then resumed.
  const out = join(work, 'stopped')
  const ctl = new AbortController()
  await train({ ...base, out }, { signal: ctl.signal, onStep: (s) => void (s.step === 2 && ctl.abort()) })
  // A checkpoint that does not say it trained them (written before they were trained, with an MLP head in their
  // place) is refused, not read into them.
  const stateFile = join(checkpointDir(out), 'state.json')
  const state = readFileSync(stateFile, 'utf8')
  t.equal(JSON.parse(state).denseModules, 2)
  writeFileSync(stateFile, JSON.stringify({ ...JSON.parse(state), denseModules: undefined }))
  await t.rejects(train({ ...base, out, resume: out }), /written by simcsepp before it trained Dense modules/)
  writeFileSync(stateFile, state)
  await train({ ...base, out, resume: out })
  for (const f of ['model.safetensors', '2_Dense/model.safetensors', '3_Dense/model.safetensors'])
    t.ok(readFileSync(join(out, f)).equals(readFileSync(join(whole, f))), `${f}: the uninterrupted run's bytes`)

  // In micro-batches of 6 rows (3 passes a step, each re-run for its slice of dL/dz): the whole batch's weights up to
  // float rounding (micro-batch.test.ts's bounds), the Dense modules' too.
  const micro = join(work, 'micro')
  await train({ ...base, microBatch: 6, out: micro })
  const { worst: encoderWorst, keyBias } = await compareWeights(micro, whole)
  t.ok(
    encoderWorst < 1e-5 && keyBias <= 2 * 4 * 1e-3,
    `encoder within ${encoderWorst.toExponential(2)}, key bias ${keyBias.toExponential(2)}`,
  )
  for (const m of ['2_Dense', '3_Dense']) {
    const [a, b] = [await savedDense(join(micro, m)), await savedDense(join(whole, m))]
    const scale = b.w.reduce((w, v) => Math.max(w, Math.abs(v)), 0)
    const diff = a.w.reduce((w, v, i) => Math.max(w, Math.abs(v - b.w[i])), 0)
    t.ok(diff < 1e-5 * scale, `${m}: weight within ${(diff / scale).toExponential(2)} relative`)
  }
})

const status = cudaStatus()
const cudaSkip = status.available ? (encoderCudaBlocker() ?? false) : `CUDA unavailable: ${status.reason}`
t.test('on CUDA: the CPU vectors (fp32, within 1e-5)', { skip: cudaSkip }, async (t) => {
  const { dir } = await denseModel()
  writePoolingConfig(dir, 'cls')
  const texts = sentences(6, 5, 14)
  const [cpu, gpu] = await Promise.all(
    ['cpu', 'cuda'].map((device) => SentenceEncoder.load(dir, { device: device as 'cpu', precision: 'fp32' })),
  )
  t.teardown(async () => {
    await cpu.close()
    await gpu.close()
  })
  t.equal(gpu.device, 'cuda')
  const d = worst(await gpu.encode(texts), await cpu.encode(texts))
  t.ok(d < 1e-5, `largest difference ${d.toExponential(2)}`)
})

// Training on CUDA: 3 steps (eager, captured as step graphs, replayed) end with the CPU's weights, the Dense modules'
// as the encoder's, within cuda-encoder.test.ts's bounds (e2eTolerance: fp32 1e-4 relative; bf16 2^-8, or 1/8 lr for
// an element whose gradient nearly cancels), the attention key biases, whose exact gradient is zero, within 2·steps·lr.
const trainSkip = status.available ? (encoderCudaBlocker(true) ?? false) : `CUDA unavailable: ${status.reason}`
for (const precision of ['fp32', 'bf16'] as const)
  t.test(`on CUDA: 3 training steps end with the CPU weights, the Dense modules too (${precision})`, { skip: trainSkip }, async (t) => {
    const { dir } = await denseModel()
    const work = tempDir('simcsepp-dense-cuda-')
    const data = join(work, 'data.txt')
    writeFileSync(data, sentences(24, 2, 6).join('\n') + '\n')
    const lr = 1e-3
    const run = { model: dir, data, steps: 3, batchSize: 6, maxLen: 10, evalEvery: 0, saveEvery: 0, lr, seed: 5, precision }
    for (const device of ['cuda', 'cpu'] as const) await train({ ...run, device, out: join(work, device) })
    const tol = e2eTolerance(precision),
      floor = precision === 'bf16' ? BF16_STEP_FLOOR * lr : 0
    for (const file of ['model.safetensors', '2_Dense/model.safetensors', '3_Dense/model.safetensors']) {
      const [gpu, cpu] = await Promise.all(['cuda', 'cpu'].map((d) => readSafetensors(join(work, d, file))))
      t.same([...gpu.keys()].sort(), [...cpu.keys()].sort(), `${file}: the same tensors`)
      for (const [name, c] of cpu) {
        const g = gpu.get(name)!.data
        const diff = g.reduce((w, v, i) => Math.max(w, Math.abs(v - c.data[i])), 0)
        if (/attention\.self\.key\.bias$/.test(name)) t.ok(diff <= 2 * 3 * lr, `${file} ${name}: ${diff.toExponential(2)}`)
        else {
          const scale = c.data.reduce((w, v) => Math.max(w, Math.abs(v)), 0)
          t.ok(diff <= tol * scale || diff <= floor, `${file} ${name}: relative difference ${(diff / scale).toExponential(2)}`)
        }
      }
    }
  })
