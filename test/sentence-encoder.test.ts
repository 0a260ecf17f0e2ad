// SentenceEncoder: vectors equal the model's own forward, input order is kept, options and errors,
// the event loop stays responsive, several encoders in worker_threads, the dist build from ESM and
// CommonJS, the README example, and the encode benchmark.
import t from 'tap'
import { performance } from 'node:perf_hooks'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { SentenceEncoder, cudaStatus } from '../lib/index.js'
import { BertModel, type Pooling } from '../lib/model/bert.js'
import type * as EngineModule from '../lib/embed/engine.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { benchEncode, type EncodeBenchOptions } from '../lib/bench/encode.js'
import { encodeBenchTable } from '../lib/cli/tables.js'
import { saveTinyModel, sentences, writeNormalizedModules } from './helpers/encoder-tiny-model.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dirs: string[] = []
t.teardown(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
const tmp = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(d)
  return d
}

async function modelDir(options: Parameters<typeof saveTinyModel>[0] = {}): Promise<string> {
  const d = await saveTinyModel({ ...options, dir: tmp('simcsepp-encoder-') })
  return d
}

/** The model's own vectors for `texts` as one padded batch (the reference). */
async function reference(dir: string, texts: string[], pooling: Pooling, maxLength: number): Promise<Float32Array[]> {
  const model = await BertModel.load(dir)
  const tok = await Tokenizer.load(dir)
  const batch = await tok.encodeBatch(texts, { maxLength })
  const out = model.embed(batch, pooling)
  const flat = out.toFloat32Array()
  out.dispose()
  model.dispose()
  const H = model.config.hiddenSize
  return texts.map((_, i) => flat.slice(i * H, (i + 1) * H))
}

/** Largest |a - b| / max(1, |b|): float32 rounding of vectors whose entries reach a few units. */
function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  let m = 0
  for (let i = 0; i < a.length; i++)
    for (let j = 0; j < a[i].length; j++) m = Math.max(m, Math.abs(a[i][j] - b[i][j]) / Math.max(1, Math.abs(b[i][j])))
  return m
}

const bitwise = (a: Float32Array[], b: Float32Array[]) =>
  a.length === b.length &&
  a.every(
    (v, i) =>
      v.length === b[i].length &&
      Buffer.compare(Buffer.from(v.buffer, v.byteOffset, v.byteLength), Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength)) === 0,
  )

t.test('vectors equal the model forward (CLS), in input order', async (t) => {
  const dir = await modelDir({ seed: 3 })
  const texts = sentences(70, 11)
  const ref = await reference(dir, texts, 'cls', 64) // maxLength 128 is clamped to the 64 positions
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.equal(enc.dimension, 32)
  t.equal(enc.pooling, 'cls')
  t.equal(enc.normalize, false)
  t.equal(enc.maxLength, 64, 'maxLength clamped to the model positions')
  t.equal(enc.device, 'cpu')
  // Same batch composition as the reference: bit-for-bit the same numbers.
  const sameBatch = await enc.encode(texts, { batchSize: texts.length, sortByLength: false })
  t.ok(bitwise(sameBatch, ref), 'one input-order batch: bitwise equal to BertModel.embed')
  // Length-sorted batches of 8: other padding, same vectors.
  const sorted = await enc.encode(texts, { batchSize: 8 })
  t.equal(sorted.length, texts.length)
  t.ok(sorted.every((v) => v instanceof Float32Array && v.length === 32))
  const d = maxAbsDiff(sorted, ref)
  t.ok(d <= 1e-5, `length-sorted batches match to 1e-5 (max diff ${d.toExponential(2)})`)
  const one = await enc.encode(texts[5])
  t.ok(one instanceof Float32Array && one.length === 32)
  t.ok(maxAbsDiff([one], [ref[5]]) <= 1e-6, 'a single sentence gives the same vector')
  t.same(await enc.encode([]), [], 'no sentences, no vectors')
  t.ok(Math.abs(enc.similarity(one, ref[5]) - 1) < 1e-6, 'similarity of a vector with itself is 1')
  t.ok(Math.abs(enc.similarity([1, 0], [0, 2])) < 1e-12, 'orthogonal vectors: 0')
  t.ok(Math.abs(enc.similarity([1, 1], [2, 2]) - 1) < 1e-12, 'parallel vectors: 1')
  t.throws(() => enc.similarity([1, 2], [1, 2, 3]), /different lengths/)
  await enc.close()
})

t.test('pooling from 1_Pooling/config.json, mean pooling, normalize', async (t) => {
  const dir = await modelDir({ seed: 4, pooling: 'mean' })
  const texts = sentences(20, 5)
  const ref = await reference(dir, texts, 'mean', 64)
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.equal(enc.pooling, 'mean', 'default pooling read from 1_Pooling/config.json')
  const got = await enc.encode(texts, { batchSize: 6 })
  t.ok(maxAbsDiff(got, ref) <= 1e-5, 'mean pooling equals BertModel.embed(.., "mean")')
  await enc.close()

  const cls = await SentenceEncoder.load(dir, { device: 'cpu', pooling: 'cls', normalize: true })
  t.equal(cls.pooling, 'cls', 'an explicit pooling option wins over the config')
  const refCls = await reference(dir, texts, 'cls', 64)
  const normed = await cls.encode(texts)
  for (const [i, v] of normed.entries()) {
    const n = Math.hypot(...v)
    const r = refCls[i],
      rn = Math.hypot(...r)
    if (Math.abs(n - 1) > 1e-5 || v.some((x, j) => Math.abs(x - r[j] / rn) > 1e-5)) {
      t.fail(`sentence ${i}: not the unit-length CLS vector (norm ${n})`)
      break
    }
  }
  t.pass('normalize: unit-length CLS vectors')
  await cls.close()

  // modules.json with a Normalize module turns normalize on by default.
  writeNormalizedModules(dir)
  const st = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.equal(st.normalize, true, 'normalize defaults to true with a Normalize module')
  await st.close()

  writeFileSync(
    join(dir, '1_Pooling', 'config.json'),
    JSON.stringify({ word_embedding_dimension: 32, pooling_mode_weightedmean_tokens: true }),
  )
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), /weightedmean pooling, which is not implemented/)
  const over = await SentenceEncoder.load(dir, { device: 'cpu', pooling: 'cls' })
  t.equal(over.pooling, 'cls', 'an unsupported configured pooling can be overridden')
  await over.close()
})

t.test("max and mean_sqrt_len pooling from 1_Pooling/config.json: the last hidden states' column maxima, sum / sqrt(count)", async (t) => {
  const dir = await modelDir({ seed: 6, pooling: 'max' })
  const texts = sentences(12, 6)
  const tok = await Tokenizer.load(dir)
  const batch = await tok.encodeBatch(texts, { maxLength: 64 })
  const model = await BertModel.load(dir)
  const hidden = model.forward(batch)
  const h = hidden.toFloat32Array()
  hidden.dispose()
  model.dispose()
  const [T, H] = [batch.shape[1], 32]
  // From the hidden states of one padded batch, in float64: what sentence-transformers' Pooling computes.
  const want = (mode: string) =>
    texts.map((_, b) => {
      const real = Array.from({ length: T }, (_, k) => k).filter((k) => batch.attentionMask[b * T + k] === 1)
      return Float32Array.from({ length: H }, (_, c) => {
        const column = real.map((k) => h[(b * T + k) * H + c])
        return mode === 'max' ? Math.max(...column) : column.reduce((s, x) => s + x, 0) / Math.sqrt(real.length)
      })
    })
  for (const [mode, config] of [
    ['max', { pooling_mode_max_tokens: true }],
    ['mean_sqrt_len', { pooling_mode_mean_sqrt_len_tokens: true }],
    ['mean_sqrt_len', { pooling_mode: 'mean_sqrt_len_tokens' }], // the constructor's name, as some configs hold it
  ] as const) {
    writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 32, ...config }))
    const enc = await SentenceEncoder.load(dir, { device: 'cpu', maxLength: 64 })
    t.equal(enc.pooling, mode, `${JSON.stringify(config)}: pooling ${mode}`)
    const got = await enc.encode(texts, { batchSize: 5 })
    const d = maxAbsDiff(got, want(mode))
    t.ok(d <= 1e-5, `${mode}: the vectors of the hidden states within 1e-5 (${d.toExponential(1)}), batches of 5 sorted by length`)
    await enc.close()
  }
})

t.test('maxLength truncates like the tokenizer', async (t) => {
  const dir = await modelDir({ seed: 5 })
  const texts = sentences(12, 9, 40)
  const enc = await SentenceEncoder.load(dir, { device: 'cpu', maxLength: 10 })
  t.equal(enc.maxLength, 10)
  const ref = await reference(dir, texts, 'cls', 10)
  t.ok(maxAbsDiff(await enc.encode(texts, { batchSize: 5 }), ref) <= 1e-5)
  await enc.close()
})

t.test('devices', async (t) => {
  const dir = await modelDir()
  const auto = await SentenceEncoder.load(dir)
  t.equal(auto.device, 'cpu', "'auto' runs on the CPU (the encoder ops are CPU-only for now)")
  if (!cudaStatus().available) t.match(auto.deviceNote ?? '', /CUDA unavailable/)
  else t.comment(`auto: ${auto.device} (${auto.deviceNote ?? ''})`)
  await auto.close()
  // No CUDA: 'unavailable'. CUDA without encoder kernels: 'cannot run this model'. Kernels: it works.
  try {
    const enc = await SentenceEncoder.load(dir, { device: 'cuda' })
    t.equal(enc.device, 'cuda')
    await enc.close()
  } catch (e) {
    t.match(
      (e as Error).message,
      /^SentenceEncoder: device 'cuda' (requested but CUDA is unavailable|cannot run this model)/,
      (e as Error).message,
    )
  }
})

t.test('device choice when CUDA is available but the encoder ops cannot run there (mocked cudaStatus)', async (t) => {
  const dir = await modelDir()
  const native = await import('../lib/native.js')
  // A usable device (mocked) whose backend lacks an encoder op (mocked: every op has a kernel now).
  const { EmbeddingEngine } = await t.mockImport<typeof EngineModule>('../lib/embed/engine.js', {
    '../lib/native.js': { addon: { ...native.addon, cudaStatus: () => ({ compiled: true, available: true, device: 'mock' }) } },
    '../lib/model/cuda-support.js': { encoderCudaBlocker: () => 'no CUDA kernels yet for linear_forward' },
  })
  if (native.addon.cudaStatus().available) {
    t.pass('a real CUDA device is here: the devices test covers it')
    return
  }
  const auto = await EmbeddingEngine.load(dir, 'auto')
  t.equal(auto.device, 'cpu', "'auto' falls back to the CPU")
  t.match(auto.note ?? '', /^CUDA cannot run the encoder \(.+\); using the CPU$/)
  auto.dispose()
  await t.rejects(EmbeddingEngine.load(dir, 'cuda'), /^SentenceEncoder: device 'cuda' cannot run this model: ./)
})

t.test('a batch beyond the memory budget runs in passes with the same vectors (issue 12)', async (t) => {
  const { EmbeddingEngine } = await import('../lib/embed/engine.js')
  const { floatsFor } = await import('../lib/model/activations.js')
  const dir = await modelDir()
  const texts = sentences(40)
  const whole = await EmbeddingEngine.load(dir, 'cpu')
  const T = 12
  // Room for 6 rows of the longest length: 40 sentences take at least 7 passes.
  const small = await EmbeddingEngine.load(dir, 'cpu', 'auto', floatsFor(whole.model.config, 6, T, false) * 4)
  const collect = async (e: typeof whole) => {
    const out: Float32Array[] = []
    let batches = 0
    await e.run(
      texts,
      { maxLength: T, batchSize: 40, sortByLength: true, pooling: 'mean', normalize: false, lowercase: false, truncateDim: null },
      (idx, v) => {
        batches++
        idx.forEach((i, k) => (out[i] = v.slice(k * e.dimension, (k + 1) * e.dimension)))
      },
    )
    return { out, batches }
  }
  const a = await collect(whole),
    b = await collect(small)
  t.equal(b.batches, 1, 'still one batch for the caller')
  t.ok(
    small.model.activationBytes <= floatsFor(whole.model.config, 6, T, false) * 4,
    `activations ${small.model.activationBytes} bytes, within the budget`,
  )
  t.ok(whole.model.activationBytes > 4 * small.model.activationBytes, `whole batch: ${whole.model.activationBytes} bytes`)
  // Each pass pads to its own longest sentence and its products have fewer rows: float32 rounding only.
  const d = maxAbsDiff(b.out, a.out)
  t.ok(d < 5e-6, `vectors equal the whole batch's within ${d.toExponential(2)}`)
  whole.dispose()
  small.dispose()
})

t.test('concurrent encode() calls', async (t) => {
  const dir = await modelDir({ seed: 6 })
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const groups = [sentences(40, 1), sentences(3, 2), sentences(25, 3), ['the cat'], sentences(60, 4)]
  const alone: Float32Array[][] = []
  for (const g of groups) alone.push(await enc.encode(g, { batchSize: 7 }))
  const together = await Promise.all(groups.map((g) => enc.encode(g, { batchSize: 7 })))
  t.ok(
    together.every((v, i) => bitwise(v, alone[i])),
    'each concurrent call gets its own vectors, in order',
  )
  // Closing rejects what is still queued.
  const pending = enc.encode(sentences(400, 8), { batchSize: 4 })
  const closing = enc.close()
  await t.rejects(pending, /closed while encoding/)
  await closing
  await enc.close() // idempotent
})

t.test('errors', async (t) => {
  const dir = await modelDir()
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  await t.rejects(enc.encode(['fine', 3 as unknown as string]), /sentences\[1\] is a number \(3\), expected a string/)
  await t.rejects(enc.encode(42 as unknown as string), /expected a string or an array of strings, got a number/)
  await t.rejects(enc.encode(null as unknown as string), /got null/)
  await t.rejects(enc.encode(['x'], { batchSize: 0 }), /batchSize must be a positive integer/)
  t.ok((await enc.encode(['still works'])).length === 1, 'the encoder survives bad calls')
  await enc.close()
  t.equal(enc.isClosed, true)
  await t.rejects(enc.encode('after close'), /SentenceEncoder: encode: the encoder is closed/)

  const missing = join(tmpdir(), 'simcsepp-no-such-dir-xyz')
  await t.rejects(SentenceEncoder.load(missing), new RegExp(`${missing}: no such directory`))
  const empty = tmp('simcsepp-empty-')
  await t.rejects(SentenceEncoder.load(empty), {
    message: `SentenceEncoder: ${empty} is not a model directory: missing config.json, model.safetensors (or pytorch_model.bin), a tokenizer (tokenizer.json or vocab.txt)`,
  })
  const noTok = tmp('simcsepp-notok-')
  const m = await BertModel.load(dir)
  await m.save(noTok)
  m.dispose()
  await t.rejects(SentenceEncoder.load(noTok), new RegExp(`${noTok} is not a model directory: missing a tokenizer`))
  await t.rejects(SentenceEncoder.load(dir, { device: 'gpu' as 'cuda' }), /device must be 'auto', 'cpu' or 'cuda'/)
  await t.rejects(SentenceEncoder.load(dir, { pooling: 'lasttoken' as 'cls' }), /pooling must be cls, mean, max or mean_sqrt_len/)
  await t.rejects(SentenceEncoder.load(dir, { maxLength: 2 }), /maxLength must be an integer >= 3/)
  // A broken checkpoint fails in the worker; the error names the directory.
  const broken = tmp('simcsepp-broken-')
  for (const f of readdirSync(dir)) writeFileSync(join(broken, f), readFileSync(join(dir, f)))
  writeFileSync(join(broken, 'model.safetensors'), 'not a safetensors file')
  await t.rejects(SentenceEncoder.load(broken, { device: 'cpu' }), new RegExp(`SentenceEncoder: cannot load ${broken}: `))
})

t.test('never blocks the event loop: the main thread stays idle while 10,000 sentences are encoded', async (t) => {
  const dir = await modelDir({ seed: 8 })
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const texts = sentences(10_000, 21)
  await enc.encode(texts.slice(0, 100)) // warm-up
  let ticks = 0
  const timer = setInterval(() => void ticks++, 10)
  // The event loop's utilisation (the share of time it was busy, not waiting for events) does not depend
  // on how loaded the machine is, unlike a timer's lateness: encoding on the main thread would keep it
  // near 1; in the worker, the main thread only receives the batches' vectors.
  const elu0 = performance.eventLoopUtilization()
  const t0 = performance.now()
  const vectors = await enc.encode(texts, { batchSize: 32 })
  const ms = performance.now() - t0
  const elu = performance.eventLoopUtilization(elu0).utilization
  clearInterval(timer)
  t.equal(vectors.length, 10_000)
  t.ok(ticks > 5, `the timer ran (${ticks} ticks in ${ms.toFixed(0)} ms)`)
  t.ok(elu < 0.5, `the main thread was busy ${(100 * elu).toFixed(1)}% of the ${ms.toFixed(0)} ms encode (< 50%)`)
  // Spot-check a few against the reference.
  const pick = [0, 4999, 9999]
  const ref = await reference(
    dir,
    pick.map((i) => texts[i]),
    'cls',
    64,
  )
  t.ok(
    maxAbsDiff(
      pick.map((i) => vectors[i]),
      ref,
    ) <= 1e-5,
    'spot-checked vectors match the model',
  )
  await enc.close()
})

t.test('works inside worker_threads, several at once', async (t) => {
  const dir = await modelDir({ seed: 9 })
  const texts = sentences(50, 13)
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const main = await enc.encode(texts, { batchSize: 8 })
  await enc.close()
  const script = new URL('./helpers/encoder-thread.ts', import.meta.url)
  const run = () =>
    new Promise<Float32Array[]>((resolve, reject) => {
      const w = new Worker(script, { workerData: { dir, sentences: texts }, execArgv: process.execArgv })
      w.once('message', resolve)
      w.once('error', reject)
      w.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)))
    })
  const [a, b] = await Promise.all([run(), run()])
  t.ok(bitwise(a, main), 'worker 1 equals the main thread')
  t.ok(bitwise(b, main), 'worker 2 equals the main thread')
})

// ------------------------------------------------------------------------------------------------
// The built package: dist/ (ESM), dist/index.cjs (CommonJS), examples/encode.mjs.

function newestMtime(dir: string, ext: string): number {
  let m = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) m = Math.max(m, newestMtime(p, ext))
    else if (e.name.endsWith(ext)) m = Math.max(m, statSync(p).mtimeMs)
  }
  return m
}

/** Builds dist/ when a source is newer than it (tsc emits even when other files have type errors). */
function ensureDist(log: (line: string) => void): void {
  const libNewest = newestMtime(join(root, 'lib'), '.ts')
  const distOk = existsSync(join(root, 'dist', 'encoder', 'worker.js')) && newestMtime(join(root, 'dist'), '.js') >= libNewest
  if (!distOk) {
    try {
      execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], {
        stdio: 'pipe',
      })
    } catch (e) {
      log(`tsc reported errors (it still emits): ${String((e as { stdout?: Buffer }).stdout ?? e).slice(0, 500)}`)
    }
  }
  execFileSync(process.execPath, [join(root, 'scripts', 'build-cjs.mjs')], { stdio: 'pipe' })
}

t.test('dist build: ESM example, CommonJS require, types', async (t) => {
  ensureDist((line) => t.comment(line))
  const dir = await modelDir({ seed: 10 })
  const env = { ...process.env, NODE_OPTIONS: '' }
  const plain = (args: string[], cwd = root) =>
    execFileSync(process.execPath, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

  // The README example, as written, by plain node (dist/, worker.js).
  const out = plain([join(root, 'examples', 'encode.mjs'), dir])
  t.match(out, /^3 vectors of dimension 32 \(device: cpu, pooling: (cls|mean)\)\n/, 'examples/encode.mjs runs')
  t.equal(out.trim().split('\n').length, 4)

  // Same vectors from dist as from the sources.
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const expected = await enc.encode(['the cat sat on the mat', 'a dog'])
  await enc.close()
  const esmScript = join(tmp('simcsepp-esm-'), 'use.mjs')
  writeFileSync(
    esmScript,
    `import { SentenceEncoder } from ${JSON.stringify(join(root, 'dist', 'index.js'))}
const enc = await SentenceEncoder.load(process.argv[2], { device: 'cpu' })
const v = await enc.encode(['the cat sat on the mat', 'a dog'])
await enc.close()
console.log(JSON.stringify(v.map((x) => Array.from(x))))\n`,
  )
  const fromDist = (JSON.parse(plain([esmScript, dir])) as number[][]).map((x) => Float32Array.from(x))
  t.ok(bitwise(fromDist, expected), 'dist/ gives the same vectors as the sources')

  // CommonJS through an "exports" map with a "require" condition: the one package.json should have.
  const consumer = tmp('simcsepp-cjs-')
  const pkgDir = join(consumer, 'node_modules', 'simcsepp')
  mkdirSync(pkgDir, { recursive: true })
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const exportsMap = {
    '.': {
      import: { types: './dist/index.d.ts', default: './dist/index.js' },
      require: { types: './dist/index.d.cts', default: './dist/index.cjs' },
    },
    './package.json': './package.json',
  }
  writeFileSync(join(pkgDir, 'package.json'), JSON.stringify({ name: 'simcsepp', type: 'module', exports: exportsMap }))
  symlinkSync(join(root, 'dist'), join(pkgDir, 'dist'), 'dir')
  const cjsFixture = join(root, 'test', 'helpers', 'encoder-cjs.cjs')
  const check = (label: string, json: string) => {
    const r = JSON.parse(json)
    t.same(
      r,
      {
        count: 2,
        dimension: 32,
        isFloat32: true,
        same: true,
        similarity: r.similarity,
        instanceOf: true,
        esmIsSame: true,
        cuda: 'boolean',
        closedError: 'SentenceEncoder: encode: the encoder is closed',
      },
      label,
    )
    t.ok(Math.abs(r.similarity - 1) < 1e-6, `${label}: similarity 1`)
  }
  // Run from inside the consumer so 'simcsepp' resolves to its node_modules.
  const local = join(consumer, 'use.cjs')
  writeFileSync(local, readFileSync(cjsFixture))
  check("require('simcsepp') via the proposed exports map", plain([local, dir], consumer))
  check('require(dist/index.cjs)', plain([cjsFixture, dir, join(root, 'dist', 'index.cjs')]))
  if (pkg.exports?.['.']?.require) check("require('simcsepp') in this package", plain([cjsFixture, dir]))
  else t.comment('package.json has no "require" export condition yet: self-reference require skipped')

  // TypeScript types of the CommonJS entry (.cts consumer, NodeNext).
  const tsDir = tmp('simcsepp-cts-')
  writeFileSync(
    join(tsDir, 'use.cts'),
    `import simcsepp = require(${JSON.stringify(join(root, 'dist', 'index.cjs'))})
export async function main(dir: string): Promise<number> {
  const enc: simcsepp.SentenceEncoder = await simcsepp.SentenceEncoder.load(dir, { pooling: 'mean', device: 'cpu' })
  const vecs: Float32Array[] = await enc.encode(['a', 'b'], { batchSize: 2 })
  const one: Float32Array = await enc.encode('a')
  const esm = await simcsepp.import()
  const status: boolean = (await simcsepp.cudaStatus()).available && esm.cudaStatus().available
  // @ts-expect-error pooling is 'cls' | 'mean' | 'max' | 'mean_sqrt_len'
  await simcsepp.SentenceEncoder.load(dir, { pooling: 'lasttoken' })
  await enc.close()
  return enc.similarity(vecs[0], one) + enc.dimension + (status ? 1 : 0)
}
`,
  )
  writeFileSync(
    join(tsDir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        types: ['node'],
        typeRoots: [join(root, 'node_modules', '@types')],
      },
      files: ['use.cts'],
    }),
  )
  let tscOut = ''
  try {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(tsDir, 'tsconfig.json')], {
      encoding: 'utf8',
      stdio: 'pipe',
    })
  } catch (e) {
    tscOut = String((e as { stdout?: string }).stdout ?? e)
  }
  t.equal(tscOut, '', 'dist/index.d.cts type-checks a CommonJS consumer')
  t.comment(`(consumer files under ${relative(root, consumer) || consumer})`)
})

t.test('bench encode: rows and table', async (t) => {
  const rows = await benchEncode({ sizes: ['mini'], sentences: 48, batchSize: 16, devices: ['cpu'], log: () => {}, repeatBelowSeconds: 0 })
  t.equal(rows.length, 1)
  const r = rows[0]
  t.match(r, { model: 'mini', device: 'cpu', sentences: 48, batchSize: 16 })
  t.ok(
    r.sortedPerSec! > 0 && r.inputOrderPerSec! > 0 && r.speedup! > 0,
    `sorted ${r.sortedPerSec?.toFixed(1)}/s, input order ${r.inputOrderPerSec?.toFixed(1)}/s`,
  )
  t.ok(r.paddingSorted <= r.paddingInputOrder, `sorting pads less (${r.paddingSorted.toFixed(3)} <= ${r.paddingInputOrder.toFixed(3)})`)
  // onnxruntime-node (a dev dependency) on the exported model, same batches: the same vectors, a positive rate.
  t.ok(r.onnxruntimePerSec! > 0, `onnxruntime ${r.onnxruntimePerSec?.toFixed(1)}/s`)
  t.ok(r.onnxruntimeMaxAbsDiff! < 1e-4, `its vectors within ${r.onnxruntimeMaxAbsDiff?.toExponential(2)} of ours`)
  const table = encodeBenchTable(rows)
  t.match(table, /sorted sent\/s/)
  t.match(table, /onnxruntime sent\/s +vs onnxruntime +no-graphs sent\/s +graphs speed-up/)
  t.equal(r.noGraphsSortedPerSec, null, 'CUDA graphs: a column of CUDA rows only')
  t.match(table, /\nmini\s+cpu\s+48\s+16/)
  t.comment('\n' + table)
  const without = await benchEncode({
    sizes: ['tiny'],
    sentences: 8,
    batchSize: 4,
    devices: ['cpu'],
    log: () => {},
    repeatBelowSeconds: 0,
    onnxruntime: false,
  })
  t.equal(without[0].onnxruntimePerSec, null, 'onnxruntime: false leaves it out')
  t.equal(without[0].bf16SortedPerSec, undefined, 'no bf16 column unless asked for')
  t.notMatch(encodeBenchTable(without), /bf16/)
  const tinyRow = async (extra: Partial<EncodeBenchOptions>) =>
    (
      await benchEncode({ sizes: ['tiny'], sentences: 24, batchSize: 8, devices: ['cpu'], log: () => {}, repeatBelowSeconds: 0, ...extra })
    )[0]
  // bf16: its own rate, the kernel, and vectors near fp32's (not equal: the products' operands are rounded).
  const b = await tinyRow({ onnxruntime: false, bf16: true })
  t.ok(b.bf16SortedPerSec! > 0, `bf16 ${b.bf16SortedPerSec?.toFixed(1)}/s`)
  t.match(b.bf16Kernel, /^(amx|avx512bf16|rounded while packed)$/)
  t.ok(
    b.bf16MaxCosineDistance! > 0 && b.bf16MaxCosineDistance! < 1e-3,
    `1 - cos(bf16, fp32) up to ${b.bf16MaxCosineDistance?.toExponential(2)}`,
  )
  t.match(encodeBenchTable([b]), /bf16 sent\/s +bf16 speed-up +bf16 max 1-cos/)
  t.notMatch(encodeBenchTable([b]), /q8|int8/, 'no q8 or int8 column unless asked for')
  // int8: its own rate, the kernel, and vectors near fp32's (int8 steps: further than bf16's).
  const i8 = await tinyRow({ onnxruntime: false, int8: true })
  t.ok(i8.int8SortedPerSec! > 0, `int8 ${i8.int8SortedPerSec?.toFixed(1)}/s`)
  t.match(i8.int8Kernel, /^(avx512vnni|avxvnni|dotprod|generic)$/)
  t.ok(
    i8.int8MaxCosineDistance! > 1e-8 && i8.int8MaxCosineDistance! < 5e-3,
    `1 - cos(int8, fp32) up to ${i8.int8MaxCosineDistance?.toExponential(2)}`,
  )
  t.match(encodeBenchTable([i8]), /int8 sent\/s +int8 speed-up +int8 max 1-cos/)
  // q8: onnxruntime on the export with int8 weights, its vectors near ours (not equal: the weights are rounded).
  const q = await tinyRow({ q8: true })
  t.ok(q.q8PerSec! > 0 && q.onnxruntimePerSec! > 0, `q8 ${q.q8PerSec?.toFixed(1)}/s, fp32 ${q.onnxruntimePerSec?.toFixed(1)}/s`)
  t.ok(q.q8MaxCosineDistance! > 1e-8 && q.q8MaxCosineDistance! < 2e-3, `1 - cos(q8, ours) up to ${q.q8MaxCosineDistance?.toExponential(2)}`)
  t.match(encodeBenchTable([q]), /q8 onnxruntime sent\/s +q8 vs fp32 onnxruntime +q8 max 1-cos/)
})
