// PyTorch weight files (lib/pytorch/torch-checkpoint.ts): models whose weights are pytorch_model.bin, as torch.save
// writes it, load as their model.safetensors does. test/helpers/torch_checkpoints.py writes the files with torch itself
// (both of torch.save's formats, views into a shared storage with strides that are not row-major, shards and an index,
// fp16 and bf16); it needs a Python that imports torch and safetensors (SIMCSEPP_PYTHON, else python3; .ci/run
// installs them when it can) and is skipped, saying so, without. The refusals need no Python: a pickle that would
// run a command is refused, not run.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BertModel } from '../lib/model/bert.js'
import { TorchCheckpointReader } from '../lib/pytorch/torch-checkpoint.js'
import { DenseLayer, readDenseConfig } from '../lib/embed/dense.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'
import { differingBits, randomBatch } from './helpers/random-batch.js'

const python = process.env.SIMCSEPP_PYTHON || 'python3'
const hasTorch = spawnSync(python, ['-c', 'import torch, safetensors'], { stdio: 'ignore' }).status === 0
const skip = hasTorch ? false : `${python} cannot import torch and safetensors (set SIMCSEPP_PYTHON to one that can)`
const work = mkdtempSync(join(tmpdir(), 'simcsepp-torch-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

/** The model's last hidden states for a fixed batch. */
async function hidden(dir: string): Promise<Float32Array> {
  const model = await BertModel.load(dir)
  try {
    const out = model.forward(randomBatch(3, 9, 5, model.config.vocabSize))
    const values = out.toFloat32Array()
    out.dispose()
    return values
  } finally {
    model.dispose()
  }
}

t.test("torch.save's files load as the model's safetensors, bit for bit", { skip }, async (t) => {
  const model = await saveTinyModel({ dir: join(work, 'model'), seed: 3 })
  const out = join(work, 'torch')
  const made = spawnSync(python, [join(import.meta.dirname, 'helpers', 'torch_checkpoints.py'), model, out], {
    encoding: 'utf8',
    timeout: 300_000,
  })
  if (made.status !== 0) return t.fail(`torch_checkpoints.py exited ${made.status}: ${(made.stderr ?? '').slice(-2000)}`)
  const written = made.stdout.trim().split('\n')
  t.same(written, ['zip', 'legacy', 'views', 'legacy-views', 'sharded', 'f16', 'bf16', 'dense'], 'every variant written')
  const want = await hidden(model)
  for (const name of ['zip', 'legacy', 'views', 'legacy-views', 'sharded']) {
    t.notOk(existsSync(join(out, name, 'model.safetensors')), `${name}: PyTorch weights alone`)
    t.equal(differingBits(await hidden(join(out, name)), want), 0, `${name}: the same hidden states`)
  }
  for (const name of ['f16', 'bf16'])
    t.equal(
      differingBits(await hidden(join(out, name)), await hidden(join(out, `${name}-st`))),
      0,
      `${name}: as the same weights in safetensors`,
    )

  // A Dense module saved by sentence-transformers before 2.3: its pytorch_model.bin, as its safetensors.
  const denseOf = async (dir: string) => {
    const layer = await DenseLayer.load(await readDenseConfig(dir), 'cpu')
    const values = [layer.weight.toFloat32Array(), layer.bias!.toFloat32Array()]
    layer.dispose()
    return values
  }
  t.same(await denseOf(join(out, 'dense')), await denseOf(join(out, 'dense-st')), 'a Dense module: the same weight and bias')

  // What the reader saw: the formats, and the views' strides.
  const zip = await TorchCheckpointReader.open(join(out, 'zip', 'pytorch_model.bin'))
  const views = await TorchCheckpointReader.open(join(out, 'views', 'pytorch_model.bin'))
  try {
    const name = [...zip.entries.keys()].find((n) => zip.entries.get(n)!.shape.length === 2)!
    t.ok(zip.entries.get(name)!.begin >= 0, `${name}: contiguous in the zip file, read in place`)
    t.equal(views.entries.get(name)!.begin, -1, `${name}: a strided view in the views file, gathered`)
    t.same(views.entries.get(name)!.shape, zip.entries.get(name)!.shape)
    t.same([...views.entries.keys()].sort(), [...zip.entries.keys()].sort(), 'the same tensors')
  } finally {
    await zip.close()
    await views.close()
  }

  // A file cut short: an Error naming it.
  const bin = readFileSync(join(out, 'zip', 'pytorch_model.bin'))
  for (const [what, bytes] of [
    ['zip', bin],
    ['legacy', readFileSync(join(out, 'legacy', 'pytorch_model.bin'))],
  ] as const) {
    const cut = join(work, `cut-${what}.bin`)
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)))
    await t.rejects(TorchCheckpointReader.open(cut), /cut-\w+\.bin: .*(truncated|not a zip archive)/, `${what} cut short`)
  }
})

/** Python's pickle protocol 2, by hand: the pickles a legacy torch.save file starts with, then `payload`. */
function legacyFile(payload: Buffer): Buffer {
  const magic = Buffer.alloc(10)
  let m = 0x1950a86a20f9469cfc6cn
  for (let i = 0; i < 10; i++, m >>= 8n) magic[i] = Number(m & 0xffn)
  return Buffer.concat([
    Buffer.from([0x80, 2, 0x8a, 10]),
    magic,
    Buffer.from('.'),
    Buffer.from([0x80, 2, 0x4d, 0xe9, 0x03, 0x2e]), // 1001
    Buffer.from([0x80, 2, 0x7d, 0x2e]), // {}
    payload,
  ])
}

t.test('a pickle that would run a command is refused, not run; other files are not PyTorch weights', async (t) => {
  const marker = join(work, 'pwned')
  // os.system('touch MARKER'), as a malicious checkpoint holds it.
  const evil = Buffer.concat([
    Buffer.from([0x80, 2]),
    Buffer.from('cos\nsystem\n'),
    Buffer.from([0x58]),
    (() => {
      const b = Buffer.alloc(4)
      b.writeUInt32LE(`touch ${marker}`.length)
      return b
    })(),
    Buffer.from(`touch ${marker}`),
    Buffer.from([0x85, 0x52, 0x2e]), // TUPLE1 REDUCE STOP
  ])
  const file = join(work, 'evil.bin')
  writeFileSync(file, legacyFile(evil))
  await t.rejects(
    TorchCheckpointReader.open(file),
    /evil\.bin: refuses the global os\.system: a weight file holds tensors and their containers only/,
  )
  t.notOk(existsSync(marker), 'nothing ran')
  const notTorch = join(work, 'text.bin')
  writeFileSync(notTorch, 'hello, not a checkpoint\n')
  await t.rejects(TorchCheckpointReader.open(notTorch), /text\.bin: neither a zip archive nor a legacy torch\.save file/)
  const noDict = join(work, 'list.bin')
  writeFileSync(noDict, legacyFile(Buffer.from([0x80, 2, 0x5d, 0x2e]))) // []
  await t.rejects(TorchCheckpointReader.open(noDict), /list\.bin: holds no dict of tensors/)
  // A model folder with such a file: BertModel.load names the file.
  const dir = await saveTinyModel({ dir: join(work, 'evil-model') })
  rmSync(join(dir, 'model.safetensors'))
  writeFileSync(join(dir, 'pytorch_model.bin'), Buffer.concat([legacyFile(evil), Buffer.alloc(1 << 20)])) // (as large as weights)
  await t.rejects(BertModel.load(dir), /pytorch_model\.bin: refuses the global os\.system/)
  t.notOk(existsSync(marker), 'nothing ran')
})
