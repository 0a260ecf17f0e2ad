// The attention's arrays kept in bfloat16 (Bf16Values): the packed q | k | v stored by its product, ctx stored by the
// attention, ctx's gradient stored by the product before it, each read by ops that round them to bf16 anyway (at the
// shapes whose attention takes bf16 operands: T <= 64, head size <= 64). Every result must be the bits of the same
// ops on fp32 arrays: on the CPU always, and on CUDA (a GPU, or the host emulator in CI). Then BertModel: a bf16 model
// trained with them (the default on CUDA) ends with the weights of one trained without (SIMCSEPP_ATTENTION_STORAGE).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaStatus } from '../lib/index.js'
import { Bf16Values } from '../lib/bf16-values.js'
import { Tensor, type Device } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { BertModel } from '../lib/model/bert.js'
import { floatsFor, attentionKeptBf16, ActivationArena } from '../lib/model/activations.js'
import { train } from '../lib/train/train.js'
import { tinyConfig } from './helpers/encoder-tiny-model.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'
import { randomBatch, differingBits } from './helpers/random-batch.js'
import { roundBf16Array } from './helpers/bf16.js'

const status = cudaStatus()
const devices: Device[] = status.available ? ['cpu', 'cuda'] : ['cpu']

/** Runs fn with the variables of `env` set (undefined: unset), restoring them after. */
async function withEnv<T>(env: Record<string, string | undefined>, fn: () => T | Promise<T>): Promise<T> {
  const before = Object.keys(env).map((k) => [k, process.env[k]] as const)
  const put = (k: string, v: string | undefined) => (v === undefined ? delete process.env[k] : (process.env[k] = v))
  for (const [k, v] of Object.entries(env)) put(k, v)
  try {
    return await fn()
  } finally {
    before.forEach(([k, v]) => put(k, v))
  }
}

/** Tensors of one device, disposed of together: sine-filled (a function of seed) and NaN-filled ones. */
function tensors(device: Device) {
  const held: Tensor[] = []
  const keep = (x: Tensor) => (held.push(x), x)
  const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1)
  return {
    sine: (shape: number[], seed: number, scale = 1) =>
      keep(
        Tensor.from(
          Float32Array.from({ length: size(shape) }, (_, i) => scale * Math.sin(seed * 3.1 + i * 0.71)),
          shape,
          device,
        ),
      ),
    nans: (shape: number[]) => keep(Tensor.from(new Float32Array(size(shape)).fill(NaN), shape, device)),
    of: (values: Float32Array, shape: number[]) => keep(Tensor.from(values, shape, device)),
    bf16: (shape: number[]) =>
      new Bf16Values(
        keep(Tensor.from(new Float32Array(Math.ceil(size(shape) / 2)).fill(NaN), [Math.ceil(size(shape) / 2)], device)),
        shape,
      ),
    dispose: () => held.forEach((x) => x.dispose()),
  }
}

// [B, T, NH, HS]: T = 1; odd T (13) with odd B * T * 3H; T = 32 and 33 (both kernel sizes on CUDA); one head; odd head
// sizes (no 4-column loads on CUDA); T = 64, the longest.
const shapes: [number, number, number, number][] = [
  [3, 1, 2, 8],
  [3, 13, 3, 5],
  [4, 32, 2, 16],
  [2, 33, 2, 12],
  [2, 20, 1, 24],
  [2, 64, 2, 7],
]

for (const device of devices) {
  t.test(`${device}: the attention's arrays in bf16 give the bits of the fp32 arrays`, async (t) => {
    for (const [B, T, NH, HS] of shapes) {
      const H = NH * HS,
        BT = B * T,
        C = 10
      const d = tensors(device)
      const what = `B=${B} T=${T} NH=${NH} HS=${HS}`
      const { attentionMask: mask } = randomBatch(B, T, B * 7 + T, 50)
      const dropout = { p: 0.2, seed: 11, offset: 3n, keepRows: null, firstRow: 0 } as ops.DropoutSite
      const x = d.sine([BT, C], 1),
        wQkv = d.sine([3 * H, C], 2, 0.4),
        bQkv = d.sine([3 * H], 3),
        wOut = d.sine([C, H], 4, 0.3),
        bOut = d.sine([C], 5),
        dy = d.sine([BT, C], 6)
      // The q | k | v product: stored rounded.
      const qkv32 = d.nans([B, T, 3 * H]),
        qkv16 = d.bf16([B, T, 3 * H])
      ops.linearForward(qkv32.view(0, [BT, 3 * H]), x, wQkv, bQkv, 'bf16')
      ops.linearForward(qkv16, x, wQkv, bQkv, 'bf16')
      const rounded = roundBf16Array(qkv32.toFloat32Array())
      t.equal(differingBits(qkv16.toFloat32Array(), rounded), 0, `${what}: q | k | v stored as bf16(product)`)
      if (device === 'cuda') {
        const again = d.bf16([B, T, 3 * H])
        await withEnv({ SIMCSEPP_BF16_OUTPUT: '0' }, () => ops.linearForward(again, x, wQkv, bQkv, 'bf16'))
        t.equal(differingBits(again.toFloat32Array(), rounded), 0, `${what}: the same written in fp32 and rounded after`)
      }
      // The attention: fp32 arrays of the rounded values against the bf16 ones (probs kept, dropout).
      const qkvR = d.of(rounded, [B, T, 3 * H])
      const ctx32 = d.nans([B, T, H]),
        ctx16 = d.bf16([B, T, H]),
        probs32 = d.nans([B, NH, T, T]),
        probs16 = d.nans([B, NH, T, T])
      ops.attentionForward(ctx32, probs32, qkvR, null, null, mask, NH, dropout, false, null, 'bf16')
      ops.attentionForward(ctx16, probs16, qkv16, null, null, mask, NH, dropout, false, null, 'bf16')
      const ctxRounded = roundBf16Array(ctx32.toFloat32Array())
      t.equal(differingBits(ctx16.toFloat32Array(), ctxRounded), 0, `${what}: ctx stored as bf16(ctx)`)
      t.equal(differingBits(probs16.toFloat32Array(), probs32.toFloat32Array()), 0, `${what}: the same probs`)
      // attention.output.dense reads ctx: as from the fp32 ctx (which it rounds).
      const h32 = d.nans([BT, C]),
        h16 = d.nans([BT, C])
      ops.linearForward(h32, ctx32.view(0, [BT, H]), wOut, bOut, 'bf16')
      ops.linearForward(h16, ctx16, wOut, bOut, 'bf16')
      t.equal(differingBits(h16.toFloat32Array(), h32.toFloat32Array()), 0, `${what}: the next product`)
      // Its backward: dctx stored rounded, dW from the bf16 ctx as from the fp32 one.
      const backward = (gCtx: Tensor | Bf16Values, ctx: Tensor | Bf16Values) => {
        const dW = d.of(new Float32Array(C * H), [C, H]),
          db = d.of(new Float32Array(C), [C])
        ops.linearBackward(gCtx, dW, db, dy, ctx, wOut, false, 'bf16')
        return [dW.toFloat32Array(), db.toFloat32Array()]
      }
      const gCtx32 = d.nans([B, T, H]),
        gCtx16 = d.bf16([B, T, H])
      const [dW32, db32] = backward(gCtx32.view(0, [BT, H]), ctx32.view(0, [BT, H]))
      const [dW16, db16] = backward(gCtx16, ctx16)
      const gRounded = roundBf16Array(gCtx32.toFloat32Array())
      t.equal(differingBits(gCtx16.toFloat32Array(), gRounded), 0, `${what}: dctx stored as bf16(dctx)`)
      t.equal(differingBits(dW16, dW32) + differingBits(db16, db32), 0, `${what}: the weight and bias gradients`)
      if (device === 'cuda') {
        const again = d.bf16([B, T, H])
        await withEnv({ SIMCSEPP_BF16_OUTPUT: '0' }, () => backward(again, ctx16))
        t.equal(differingBits(again.toFloat32Array(), gRounded), 0, `${what}: dctx written in fp32 and rounded after`)
      }
      // The attention's backward from the bf16 arrays: as from fp32 ones of their values, with probs and without.
      for (const probs of [probs32, null]) {
        const dq32 = d.nans([B, T, 3 * H]),
          dq16 = d.nans([B, T, 3 * H])
        const sums32 = d.of(new Float32Array(3 * H), [3 * H]),
          sums16 = d.of(new Float32Array(3 * H), [3 * H])
        const dctxR = d.of(gRounded, [B, T, H])
        ops.attentionBackward(dq32, null, null, dctxR, qkvR, null, null, probs, mask, NH, dropout, false, null, null, 'bf16', sums32)
        ops.attentionBackward(dq16, null, null, gCtx16, qkv16, null, null, probs, mask, NH, dropout, false, null, null, 'bf16', sums16)
        const p = probs ? 'probs kept' : 'P formed again'
        t.equal(differingBits(dq16.toFloat32Array(), dq32.toFloat32Array()), 0, `${what}, ${p}: dq | dk | dv`)
        t.equal(differingBits(sums16.toFloat32Array(), sums32.toFloat32Array()), 0, `${what}, ${p}: the bias sums`)
      }
      d.dispose()
    }
  })

  t.test(`${device}: bf16 arrays are checked`, async (t) => {
    const [B, T, NH, HS] = [2, 4, 2, 4]
    const H = NH * HS,
      BT = B * T
    const d = tensors(device)
    const mask = new Int32Array(BT).fill(1)
    const qkv = d.bf16([B, T, 3 * H]),
      ctx = d.bf16([B, T, H]),
      probs = d.nans([B, NH, T, T])
    const ctx32 = d.nans([B, T, H]),
      qkv32 = d.sine([B, T, 3 * H], 1),
      dq = d.nans([B, T, 3 * H])
    t.throws(() => ops.attentionForward(ctx32, probs, qkv, null, null, mask, NH, null, false, null, 'bf16'), {
      name: 'TypeError',
      message: /ctx and q to be both Bf16Values or both Tensors/,
    })
    t.throws(
      () => ops.attentionForward(ctx, probs, qkv, null, null, mask, NH, null, false, null, 'fp32'),
      /bf16Shape needs precision 'bf16', T <= 64 and a head size <= 64/,
    )
    t.throws(
      () => ops.attentionForward(ctx, probs, qkv, null, null, mask, NH, null, true, null, 'bf16'),
      /bf16Next cannot be used with bf16Shape/,
    )
    t.throws(
      () => ops.attentionForward(ctx, probs, qkv, qkv32, qkv32, mask, NH, null, false, null, 'bf16'),
      /bf16Shape needs the packed projection: k and v null/,
    )
    const short = d.bf16([B, T, 3 * H - 1])
    t.throws(
      () => ops.attentionForward(ctx, probs, short, null, null, mask, NH, null, false, null, 'bf16'),
      /Expected q to hold \d+ elements \(as ceil\(B \* T \* 3H \/ 2\) floats/,
    )
    const long = d.bf16([B, 65, H])
    t.throws(
      () =>
        ops.attentionForward(long, null, d.bf16([B, 65, 3 * H]), null, null, new Int32Array(B * 65).fill(1), NH, null, false, null, 'bf16'),
      /T <= 64/,
    )
    t.throws(
      () => ops.attentionBackward(dq, null, null, ctx32, qkv, null, null, probs, mask, NH, null, false, null, null, 'bf16'),
      /dctx and q to be both/,
    )
    t.throws(
      () =>
        ops.attentionBackward(
          d.nans([B, T, H]),
          d.nans([B, T, H]),
          d.nans([B, T, H]),
          ctx,
          qkv,
          null,
          null,
          probs,
          mask,
          NH,
          null,
          false,
          null,
          null,
          'bf16',
        ),
      /dq, dk, dv to be packed/,
    )
    // The linear layers: bf16 arrays at bf16 only; dinp in bf16 without accumulation, GELU or column sums.
    const W = d.sine([6, H], 2),
      out = d.nans([BT, 6]),
      dout = d.sine([BT, 6], 3),
      dW = d.nans([6, H])
    t.throws(() => ops.linearForward(out, ctx, W, null, 'fp32'), /inpBf16 needs precision 'bf16'/)
    t.throws(() => ops.linearForward(d.bf16([BT, 6]), ctx, W, null, 'bf16'), /outBf16 and inpBf16 cannot both be set/)
    t.throws(() => ops.linearForward(d.bf16([BT, 6]), ctx32, W, null, 'bf16', null, true), /bf16Next needs geluOut/)
    t.throws(() => ops.linearForward(d.nans([BT + 1, 6]), ctx, W, null, 'bf16'), /Expected inp to hold/)
    t.throws(() => ops.linearBackward(ctx, dW, null, dout, ctx32, W, false, 'fp32'), /dinpBf16 needs precision 'bf16'/)
    t.throws(() => ops.linearBackward(ctx, dW, null, dout, ctx32, W, true, 'bf16'), /dinpBf16 cannot be used with accumulateInput/)
    t.throws(
      () => ops.linearBackward(ctx, dW, null, dout, ctx32, W, false, 'bf16', null, false, null, d.nans([H])),
      /dinpColumnSums cannot be used with dinpBf16/,
    )
    t.throws(() => ops.linearBackward(d.nans([BT, H]), dW, null, dout, ctx, W, false, 'fp32'), /inpBf16 needs precision 'bf16'/)
    t.throws(() => ops.linearBackward(d.nans([BT, H]), dW, null, d.sine([BT + 2, 6], 4), ctx, W, false, 'bf16'), /Expected inp to hold/)
    d.dispose()
  })
}

t.test('the arena: q | k | v, ctx and its gradient in half the floats where the attention takes bf16', async (t) => {
  const c = tinyConfig({ hiddenSize: 32, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 128 })
  const H = c.hiddenSize,
    L = c.numHiddenLayers
  for (const [B, T] of [
    [3, 7],
    [4, 64],
    [2, 65],
  ]) {
    const BT = B * T
    const kept = attentionKeptBf16(c, T, true)
    t.equal(kept, T <= 64, `T = ${T}: kept in bf16 ${kept}`)
    const saved = kept
      ? L * (3 * BT * H - Math.ceil((3 * BT * H) / 2) + BT * H - Math.ceil((BT * H) / 2)) + BT * H - Math.ceil((BT * H) / 2)
      : 0
    t.equal(floatsFor(c, B, T, true, true, false) - floatsFor(c, B, T, true, true, true), saved, `T = ${T}: ${saved} floats fewer`)
    t.equal(floatsFor(c, B, T, false, true, true), floatsFor(c, B, T, false), `T = ${T}: inference unchanged`)
  }
  t.notOk(attentionKeptBf16(tinyConfig({ hiddenSize: 130, numAttentionHeads: 2 }), 8, true), 'a head of 65 columns: fp32')
  // The arena carves them as Bf16Values of ceil(n / 2) floats (T <= 64), else as Tensors; inference keeps fp32.
  const arena = new ActivationArena(c, 'cpu', true, true)
  t.teardown(() => arena.dispose())
  for (const T of [7, 65]) {
    const a = arena.acquire(3, T, true)
    const n = 3 * T * c.hiddenSize
    const sizes = [...a.layers.flatMap((l) => [l.qkv, l.ctx]), a.gCtx].map((x) => (x instanceof Bf16Values ? x.storage.numel : -x.numel))
    const want = T <= 64 ? [Math.ceil((3 * n) / 2), Math.ceil(n / 2)] : [-3 * n, -n]
    t.same(sizes, [...Array.from({ length: L }, () => want).flat(), want[1]], `T = ${T}: q | k | v, ctx, gCtx`)
  }
  t.notOk(arena.acquire(3, 7, false).layers[0].qkv instanceof Bf16Values, 'inference: fp32')
  // BertModel: on CUDA at bf16 by default; SIMCSEPP_ATTENTION_STORAGE says otherwise on either device.
  const make = (device: Device, precision: 'fp32' | 'bf16') => {
    const m = BertModel.create(c, { seed: 1, device, precision })
    const on = m.attentionBf16
    m.dispose()
    return on
  }
  t.equal(make('cpu', 'bf16'), false, 'CPU at bf16: fp32 arrays')
  t.equal(await withEnv({ SIMCSEPP_ATTENTION_STORAGE: 'bf16' }, () => make('cpu', 'bf16')), true, "CPU with 'bf16'")
  t.equal(await withEnv({ SIMCSEPP_ATTENTION_STORAGE: 'bf16' }, () => make('cpu', 'fp32')), false, 'never at fp32')
  if (status.available) {
    t.equal(make('cuda', 'bf16'), true, 'CUDA at bf16: bf16 arrays')
    t.equal(await withEnv({ SIMCSEPP_ATTENTION_STORAGE: 'fp32' }, () => make('cuda', 'bf16')), false, "CUDA with 'fp32'")
  }
  await t.rejects(
    withEnv({ SIMCSEPP_ATTENTION_STORAGE: 'half' }, () => make('cpu', 'bf16')),
    /SIMCSEPP_ATTENTION_STORAGE must be 'bf16' or 'fp32', not 'half'/,
  )
})

for (const device of devices) {
  t.test(`${device}: bf16 training with the attention's arrays in bf16 ends with the weights of fp32 arrays`, async (t) => {
    const dir = tempDir('simcsepp-attention-bf16-')
    const model = await microModel(dir, 'micro')
    const data = writeSentences(join(dir, 'data.txt'), 30)
    const run = { model, data, steps: 3, batchSize: 6, maxLen: 9, evalEvery: 0, saveEvery: 0, seed: 5, lr: 1e-3 }
    const files: Buffer[] = []
    for (const storage of ['fp32', 'bf16']) {
      const out = join(dir, storage)
      await withEnv({ SIMCSEPP_ATTENTION_STORAGE: storage }, () => train({ ...run, device, precision: 'bf16', out, microBatch: 7 }))
      files.push(readFileSync(join(out, 'model.safetensors')))
    }
    t.ok(files[1].equals(files[0]), 'the same model, byte for byte')
  })
}
