// Regression corpus of the adversarial pass on the native layer and on numbers (issue 9): disposing a
// tensor frees its memory even while views of it exist, and those views refuse every use; a disposed
// BertModel says so instead of running; a checkpoint holding NaN or Infinity is refused at load,
// naming the tensor; oversized shapes get a message with the limit; loss parameters and inputs that
// would make the loss or its gradients NaN or Infinity are errors naming them, as are NaN gradients
// in clipGradNorm.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import { SentenceEncoder, Tensor, clipGradNorm, losses, type LossOutput } from '../../lib/index.js'
import { BertModel } from '../../lib/model/bert.js'
import { namedConfig } from '../../lib/model/config.js'
import { addon } from '../../lib/native.js'
import * as ops from '../../lib/ops.js'
import { readSafetensors, writeSafetensors } from '../../lib/safetensors.js'
import { nativeOf } from '../../lib/tensor.js'
import { writeVocab } from '../../lib/train/vocab.js'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void
const MB = 2 ** 20

const dir = mkdtempSync(join(tmpdir(), 'simcsepp-native-corpus-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const mat = (n: number, d: number, f: (i: number) => number = (i) => Math.sin(i + 0.5)) =>
  Tensor.from(
    new Float32Array(n * d).map((_, i) => f(i)),
    [n, d],
  )

function expectFinite(t: Test, what: string, out: LossOutput): void {
  t.ok(Number.isFinite(out.loss), `${what}: loss ${out.loss} is finite`)
  for (const [k, v] of Object.entries(out.grads)) t.ok((v as Tensor).toFloat32Array().every(Number.isFinite), `${what}: grads.${k} finite`)
}

t.test('disposing a model frees its parameters: create + dispose cycles stay bounded', async (t) => {
  // 'mini' holds ~11M parameters (44 MB). Before the fix, the per-parameter views kept every
  // disposed model's storage alive: 12 cycles leaked ~530 MB while V8 was told it was freed.
  const cycle = () => BertModel.create('mini', { seed: 1 }).dispose()
  const m0 = addon.tensorMemory()
  const model = BertModel.create('mini', { seed: 1 })
  const modelBytes = model.params.numel * 4
  model.embed({ inputIds: Int32Array.from([2, 5, 6, 3]), shape: [1, 4] }).dispose() // activations too
  model.dispose()
  t.same(addon.tensorMemory(), m0, 'dispose frees every byte the model held, and V8 is told exactly that')
  gc()
  const before = process.memoryUsage()
  for (let i = 0; i < 12; i++) cycle()
  gc() // the JavaScript Float32Arrays create() filled; native memory must already be gone
  const after = process.memoryUsage()
  const growth = after.rss - before.rss
  t.ok(
    growth < 3 * modelBytes,
    `RSS grew ${(growth / MB).toFixed(0)} MB over 12 cycles (< 3 models = ${((3 * modelBytes) / MB).toFixed(0)} MB)`,
  )
})

t.test('a tensor of 32 MiB or more (2 MiB aligned, huge pages asked for) starts zeroed and keeps what is written', async (t) => {
  const n = (40 * MB) / 4
  const big = Tensor.zeros([n])
  t.ok(
    big.toFloat32Array().every((x) => x === 0),
    'all 40 MiB read back as zeros',
  )
  big.fill(3)
  const back = big.toFloat32Array()
  t.same([back[0], back[n >> 1], back[n - 1]], [3, 3, 3], 'first, middle and last element as filled')
  big.dispose()
})

t.test('disposing the owner frees the storage while a view is alive; the views refuse every use', async (t) => {
  const bytes = 64 * MB // zero-filled, so resident
  const m0 = addon.tensorMemory()
  const owner = Tensor.zeros([bytes / 4])
  const view = owner.view(8, [4, 4])
  const viewOfView = view.view(4, [2, 2])
  const m1 = addon.tensorMemory()
  t.same([m1.heldBytes - m0.heldBytes, m1.reportedBytes - m0.reportedBytes], [bytes, bytes], 'held and reported once (views add nothing)')
  const rss0 = process.memoryUsage().rss
  owner.dispose()
  t.ok(rss0 - process.memoryUsage().rss > 48 * MB, 'the 64 MB are returned at once although views exist')
  t.same(addon.tensorMemory(), m0, 'and V8 is told exactly that')
  owner.dispose()
  view.dispose()
  t.same(addon.tensorMemory(), m0, 'disposing again, or disposing the views, accounts nothing twice')

  for (const [what, v] of [
    ['a view', view],
    ['a view of a view', viewOfView],
  ] as const) {
    t.equal(v.disposed, true, `${what} reports disposed`)
    t.match(String(v), /disposed/)
    const gone = /this tensor was disposed/
    t.throws(() => v.toFloat32Array(), gone, `${what}: toFloat32Array`)
    t.throws(() => v.fill(1), gone, `${what}: fill`)
    t.throws(() => v.copyFrom(new Float32Array(v.numel)), gone, `${what}: copyFrom(Float32Array)`)
    t.throws(() => v.copyFrom(Tensor.zeros(v.shape)), gone, `${what}: copyFrom(Tensor)`)
    t.throws(() => v.to('cpu'), gone, `${what}: to`)
    t.throws(() => v.view(0, [1]), gone, `${what}: view`)
    t.throws(() => Tensor.zeros(v.shape).copyFrom(v), /src is a disposed Tensor/, `${what} as a copy source`)
    t.throws(() => ops.addInplace(v, Tensor.zeros(v.shape)), /dst is a disposed Tensor/, `${what} as an op output`)
    t.throws(() => ops.gradSumSquares(v), /g is a disposed Tensor/, `${what} as an op input`)
  }

  // Disposing a view frees nothing its owner still uses.
  const live = Tensor.from(Float32Array.from([1, 2, 3, 4]), [4])
  const part = live.view(1, [2])
  part.dispose()
  t.equal(part.disposed, true)
  t.equal(live.disposed, false)
  t.same(Array.from(live.toFloat32Array()), [1, 2, 3, 4], 'the owner is intact after its view was disposed')
})

t.test('a view keeps an unreferenced owner from being collected', async (t) => {
  // The owner's finalizer frees the storage, so a view must keep the owner alive.
  const makeView = () => Tensor.from(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), [8]).view(2, [4])
  const v = makeView()
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve)) // finalizers run after the collection
  }
  t.equal(v.disposed, false)
  t.same(Array.from(v.toFloat32Array()), [2, 3, 4, 5])
})

t.test('a disposed BertModel throws "this model was disposed" instead of running', async (t) => {
  const model = BertModel.create({ ...namedConfig('tiny', 16) }, { seed: 1, mlp: true })
  const batch = { inputIds: Int32Array.from([2, 5, 6, 3]), shape: [1, 4] }
  t.equal(model.embed(batch).shape[1], 128, 'embeds while alive')
  model.dispose()
  t.equal(model.disposed, true)
  t.equal(model.params.disposed, true, 'the flat parameter tensor is freed')
  const gone = /this model was disposed/
  t.throws(() => model.embed(batch), gone, 'embed')
  t.throws(() => model.forward(batch), gone, 'forward')
  t.throws(() => model.trainForward(batch, { seed: 1, step: 0 }), gone, 'trainForward')
  t.throws(() => model.trainBackward(Tensor.zeros([1, 128])), gone, 'trainBackward')
  t.throws(() => model.param('embeddings.word_embeddings.weight'), gone, 'param')
  t.throws(() => model.grads, gone, 'grads')
  t.throws(() => model.zeroGrad(), gone, 'zeroGrad')
  await t.rejects(model.save(join(dir, 'never')), gone, 'save')
  t.doesNotThrow(() => model.dispose(), 'dispose twice is harmless')
})

t.test('a checkpoint holding NaN or Infinity is refused at load, naming the tensor and element', async (t) => {
  await writeVocab(join(dir, 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'b'])
  const model = BertModel.create({ ...namedConfig('tiny', 7) }, { seed: 1 })
  await model.save(dir)
  model.dispose()
  const file = join(dir, 'model.safetensors')
  const original = await readSafetensors(file)
  const copy = () => new Map([...original].map(([k, v]) => [k, { shape: v.shape, data: v.data.slice() }]))
  const corrupt = async (name: string, at: number, value: number) => {
    const tensors = copy()
    tensors.get(name)!.data[at] = value
    await writeSafetensors(file, tensors)
  }

  await corrupt('encoder.layer.0.attention.self.query.weight', 17, NaN)
  await t.rejects(
    BertModel.load(dir),
    /model\.safetensors: tensor 'encoder\.layer\.0\.attention\.self\.query\.weight' holds NaN at element 17; the model is corrupt \(retrain or re-download it\)/,
  )
  await t.rejects(
    SentenceEncoder.load(dir, { device: 'cpu' }),
    /tensor 'encoder\.layer\.0\.attention\.self\.query\.weight' holds NaN/,
    'the encoder refuses it too',
  )

  await corrupt('embeddings.word_embeddings.weight', 3, Infinity)
  await t.rejects(BertModel.load(dir), /tensor 'embeddings\.word_embeddings\.weight' holds Infinity at element 3/)
  await corrupt('encoder.layer.1.output.LayerNorm.bias', 127, -Infinity)
  await t.rejects(BertModel.load(dir), /tensor 'encoder\.layer\.1\.output\.LayerNorm\.bias' holds -Infinity at element 127/)

  await writeSafetensors(file, copy())
  const ok = await BertModel.load(dir)
  t.equal(ok.disposed, false, 'the intact checkpoint still loads')
  ok.dispose()

  t.equal(addon.firstNonFinite(Float32Array.from([0, 1, -2, 3e38])), -1)
  t.equal(addon.firstNonFinite(new Float32Array(10_000).fill(1).fill(NaN, 9_999)), 9_999)
  t.throws(() => addon.firstNonFinite(new Float64Array(2) as never), /data to be a Float32Array/)
})

t.test('shapes beyond the limits get a message with the limit', async (t) => {
  t.throws(() => Tensor.zeros([2 ** 31]), /shape\[0\] = 2147483648 is too large: a dimension may be at most 2147483647 \(2\^31 - 1\)/)
  t.throws(() => Tensor.zeros([4, 2 ** 31 + 5]), /shape\[1\] = 2147483653 is too large/)
  t.throws(
    () => Tensor.zeros([65536, 65536, 65536]),
    /shape \[65536, 65536, 65536\] describes 2\.81\d*e14 elements, more than the limit of 4e12/,
  )
  // 2^40 floats (4 TiB) pass the element limit but no machine running this has the memory: a clear
  // error before the allocation (a zero-fill past the free memory would get the process killed).
  t.throws(
    () => Tensor.zeros([65536, 65536, 256]),
    /A tensor of shape \[65536, 65536, 256\] needs 4 TiB but only [\d.]+ [GT]iB of memory is available: use a smaller shape or free memory/,
  )
  t.throws(() => Tensor.zeros([2, -1]), /shape\[1\] to be a non-negative integer but received number -1$/)
  t.same(Tensor.zeros([2, 3]).shape, [2, 3], 'ordinary shapes still work')
})

t.test('loss parameters are bounded so that the loss and its gradients stay finite', async (t) => {
  const [a, b, c] = [mat(4, 3), mat(4, 3, (i) => Math.cos(i)), mat(4, 3, (i) => Math.sin(2 * i))]
  t.throws(
    () => losses.simcse(a, b, { temperature: 1e-300 }),
    /losses\.simcse: expected option temperature to be in \[0\.000001, 1000000\]/,
  )
  t.throws(() => losses.offDropout(a, b, c, { temperature: 1e300 }), /temperature to be in/)
  t.throws(() => losses.dcl(a, b, { temperature: 1e-7 }), /losses\.dcl: expected option temperature/)
  t.throws(() => losses.offDropout(a, b, c, { posScale: 1e308 }), /expected option posScale to be in \[-1000000, 1000000\]/)
  t.throws(() => losses.simcsePlusPlus(a, b, c, { dclTemperature: 1e-300 }), /option dclTemperature to be in/)
  t.throws(() => losses.simcsePlusPlus(a, b, c, { dclWeight: -1e300 }), /option dclWeight to be in/)
  t.throws(() => losses.simcse(a, b, { temperature: 0 }), /temperature to be a number > 0/, 'the old wording for <= 0 stays')

  // The addon checks the same ranges for JavaScript that bypasses lib/.
  const g = () => Tensor.zeros([4, 3])
  const n = (x: Tensor) => nativeOf(x, 'x')
  t.throws(
    () => addon.simcse(n(a), n(b), null, 1e-300, n(g()), n(g()), null, 1, false),
    /Expected temperature to be in \[1e-6, 1000000\].*received 1e-300/,
  )
  t.throws(() => addon.dcl(n(a), n(b), 1e-300, n(g()), n(g()), 1, false), /Expected temperature to be in \[1e-6/)
  t.throws(
    () => addon.offDropout(n(a), n(b), n(c), 0.05, 1e308, n(g()), n(g()), n(g()), 1, false),
    /Expected posScale to be in \[-1000000, 1000000\] but received 1e308/,
  )
  t.throws(() => addon.dcl(n(a), n(b), 5, n(g()), n(g()), 1e300, false), /Expected weight to be in/)

  // At the edges of the ranges every result is finite.
  const finite = (what: string, out: LossOutput) => expectFinite(t, what, out)
  finite('simcse at temperature 1e-6', losses.simcse(a, b, { temperature: 1e-6 }))
  finite('offDropout at temperature 1e-6, posScale 1e6', losses.offDropout(a, b, c, { temperature: 1e-6, posScale: 1e6 }))
  finite('offDropout at posScale -1e6', losses.offDropout(a, b, c, { posScale: -1e6 }))
  finite('dcl at temperature 1e-6', losses.dcl(a, b, { temperature: 1e-6 }))
  finite(
    'simcsePlusPlus at the edges',
    losses.simcsePlusPlus(a, b, c, { temperature: 1e6, posScale: 1e6, dclTemperature: 1e-6, dclWeight: 1e6 }),
  )
})

t.test('inputs whose squares overflow float32 are reported by name, not turned into NaN', async (t) => {
  const huge = (v: number) => mat(4, 3, (i) => (i === 5 ? v : Math.sin(i)))
  const b = mat(4, 3, (i) => Math.cos(i)),
    c = mat(4, 3, (i) => Math.sin(2 * i))
  const beyond = (name: string) =>
    new RegExp(`^${name} contains NaN or Inf values, or values beyond ±1e15 \\(the embeddings have diverged\\)$`)
  // Before: a NaN loss, and NaN gradients with a finite loss.
  t.throws(() => losses.simcse(huge(3e38), huge(3e38)), beyond('z1'))
  t.throws(() => losses.offDropout(b, c, huge(3e38)), beyond('z0'))
  t.throws(() => losses.simcse(b, huge(-3e38)), beyond('z2'))
  t.throws(() => losses.simcse(b, c, { hardNegatives: huge(1e20) }), beyond('hardNegatives'))
  t.throws(() => losses.dcl(huge(-3e38), b), beyond('z1'))
  t.throws(() => losses.simcsePlusPlus(b, huge(3e38), c), beyond('z2'))
  // Up to the bound the math holds: cosines and batch normalisation do not see the scale.
  const scaled = (x: Tensor, s: number) =>
    Tensor.from(
      x.toFloat32Array().map((v) => v * s),
      x.shape,
    )
  const z = mat(4, 3)
  const close = (what: string, big: LossOutput, ref: number, tol: number) => {
    t.ok(Math.abs(big.loss - ref) <= tol * Math.abs(ref), `${what}: loss ${big.loss} matches ${ref} at scale 1e14`)
    expectFinite(t, `${what} at scale 1e14`, big)
  }
  close('simcse', losses.simcse(scaled(z, 1e14), scaled(b, -1e14)), losses.simcse(z, scaled(b, -1)).loss, 1e-5)
  close('offDropout', losses.offDropout(scaled(z, 1e14), b, scaled(c, 1e14)), losses.offDropout(z, b, c).loss, 1e-5)
  close('dcl', losses.dcl(scaled(z, 1e14), b), losses.dcl(z, b).loss, 1e-3)
})

t.test('clipGradNorm reports NaN or infinite gradients instead of scaling by NaN', async (t) => {
  const nan = Tensor.from(Float32Array.from([3, NaN, 4]), [3])
  t.throws(() => clipGradNorm(nan, 1), /clipGradNorm: the gradient norm is NaN \(the gradients hold NaN or Infinity\)/)
  const inf = Tensor.from(Float32Array.from([3, -Infinity]), [2])
  t.throws(() => clipGradNorm(inf, 1), /clipGradNorm: the gradient norm is Infinity/)
  const g = Tensor.from(Float32Array.from([3, 4]), [2])
  t.throws(() => clipGradNorm(g, NaN), /clipGradNorm: expected maxNorm to be a number > 0 but received number NaN/)
  t.throws(() => clipGradNorm(g, 0), /maxNorm/)
  t.same(Array.from(g.toFloat32Array()), [3, 4], 'a rejected call leaves the gradients alone')
  t.equal(clipGradNorm(g, 10), 5, 'finite gradients are clipped as before')
})
