// BertModel.load reads each tensor of the checkpoint straight into the model's memory and initialises only
// what the checkpoint lacks, jumping the initialisation's random stream to where that tensor's draws begin
// (lib/model/xoshiro128.ts, init.ts). These tests hold the jump to plain stepping and the loaded model to the
// values the full initialisation followed by the checkpoint's tensors gives, bit for bit.
import t from 'tap'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { BertModel } from '../lib/model/bert.js'
import { cudaStatus } from '../lib/index.js'
import { namedConfig } from '../lib/model/config.js'
import { gaussianStream, initialEntryValues, initialiseParameters } from '../lib/model/init.js'
import { MLP_BIAS, MLP_WEIGHT, paramLayout } from '../lib/model/layout.js'
import { advanceXoshiro, xoshiroStep } from '../lib/model/xoshiro128.js'
import { bf16ToFloat, floatToBf16, readSafetensors, writeSafetensors } from '../lib/safetensors.js'

const dir = await fsp.mkdtemp(join(tmpdir(), 'simcsepp-model-load-'))
t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))

const bits = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)]

t.test('advanceXoshiro(n) is n single steps, for n on both sides of the stepping threshold', async (t) => {
  for (const n of [0, 1, 2, 255, 256, 257, 1000, 4096, 65537, 1_000_003]) {
    const seed = [0x12345678, 0x9abcdef0, 0x0fedcba9, 0x87654321 + n]
    const stepped = Uint32Array.from(seed.map((x) => x >>> 0))
    for (let i = 0; i < n; i++) xoshiroStep(stepped)
    const jumped = Uint32Array.from(seed.map((x) => x >>> 0))
    advanceXoshiro(jumped, n)
    t.same([...jumped], [...stepped], `n = ${n}`)
  }
  t.throws(() => advanceXoshiro(new Uint32Array(4), -1), /steps must be a non-negative safe integer, got -1/)
  t.throws(() => advanceXoshiro(new Uint32Array(4), 1.5), /got 1.5/)
})

t.test('gaussianStream(seed, skip) continues gaussianStream(seed) from draw skip, odd or even', async (t) => {
  const full = gaussianStream(42)
  const draws = Array.from({ length: 300_010 }, () => full())
  for (const skip of [0, 1, 2, 3, 511, 512, 100_001, 300_000]) {
    const s = gaussianStream(42, skip)
    t.same(
      Array.from({ length: 10 }, () => s()),
      draws.slice(skip, skip + 10),
      `skip ${skip}`,
    )
  }
})

t.test('initialEntryValues gives every entry the values of the full initialisation', async (t) => {
  const config = namedConfig('tiny', 300)
  const layout = paramLayout(config, { mlp: true })
  const flat = new Float32Array(layout.total)
  initialiseParameters(flat, layout, config, 11)
  for (const e of layout.entries) {
    const alone = initialEntryValues(layout, config, 11, e.name)
    t.same(bits(alone), bits(flat.subarray(e.offset, e.offset + e.size)), e.name)
  }
  t.throws(() => initialEntryValues(layout, config, 11, 'nope'), /no parameter named nope/)
})

t.test('load: stored tensors read as stored, missing ones (pooler, training head) as the seed initialises them', async (t) => {
  const config = namedConfig('tiny', 300)
  const saved = BertModel.create(config, { seed: 5 })
  const modelDir = join(dir, 'no-pooler')
  await saved.save(modelDir)
  saved.dispose()
  // Drop the pooler and store one tensor as bf16.
  const file = join(modelDir, 'model.safetensors')
  const stored = await readSafetensors(file)
  const bf16Name = 'encoder.layer.1.intermediate.dense.weight'
  await writeSafetensors(
    file,
    new Map(
      [...stored]
        .filter(([name]) => !name.startsWith('pooler.'))
        .map(([name, st]) => [name, { shape: st.shape, data: st.data, dtype: name === bf16Name ? ('BF16' as const) : ('F32' as const) }]),
    ),
  )

  const loaded = await BertModel.load(modelDir, { mlp: true, seed: 7 })
  const reference = BertModel.create(config, { mlp: true, seed: 7 })
  t.teardown(() => {
    loaded.dispose()
    reference.dispose()
  })
  const missing = ['pooler.dense.weight', 'pooler.dense.bias', MLP_WEIGHT, MLP_BIAS]
  for (const e of loaded.layout.entries) {
    const got = loaded.param(e.name).toFloat32Array()
    if (missing.includes(e.name)) {
      t.same(bits(got), bits(reference.param(e.name).toFloat32Array()), `${e.name}: as create(seed 7) initialises it`)
    } else {
      const st = stored.get(e.name)!.data
      const want = e.name === bf16Name ? Float32Array.from(st, (v) => bf16ToFloat(floatToBf16(v))) : st
      t.same(bits(got), bits(want), `${e.name}: as stored`)
    }
  }
})

t.test('load onto a model larger than one read chunk: the word embeddings span 5 chunks', async (t) => {
  const config = { ...namedConfig('tiny', 40_000), hiddenSize: 128 } // 5.12 M embedding values
  const saved = BertModel.create(config, { seed: 2 })
  const modelDir = join(dir, 'big-vocab')
  await saved.save(modelDir)
  const want = saved.params.toFloat32Array()
  saved.dispose()
  const loaded = await BertModel.load(modelDir)
  t.teardown(() => loaded.dispose())
  const got = loaded.params.toFloat32Array()
  let differ = 0
  for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want[i])) differ++
  t.equal(differ, 0, `${got.length} parameters, none differs`)
})

const cuda = cudaStatus()
t.test(
  'load onto CUDA: the CPU load bit for bit, chunks copied to the device',
  { skip: cuda.available ? false : `CUDA unavailable: ${cuda.reason}` },
  async (t) => {
    const config = { ...namedConfig('tiny', 20_000), hiddenSize: 128 } // 2.56 M embedding values: 3 chunks
    const saved = BertModel.create(config, { seed: 4 })
    const modelDir = join(dir, 'to-cuda')
    await saved.save(modelDir)
    saved.dispose()
    const cpu = await BertModel.load(modelDir, { mlp: true, seed: 3 })
    const gpu = await BertModel.load(modelDir, { mlp: true, seed: 3, device: 'cuda' })
    t.teardown(() => {
      cpu.dispose()
      gpu.dispose()
    })
    t.equal(gpu.params.device, 'cuda')
    const got = gpu.params.toFloat32Array(),
      want = cpu.params.toFloat32Array()
    let differ = 0
    for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want[i])) differ++
    t.equal(differ, 0, `${got.length} parameters, none differs`)
  },
)
