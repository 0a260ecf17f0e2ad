// The attention's arrays kept in bfloat16 (Bf16Values): the packed q | k | v stored by its product, ctx stored by the
// attention, ctx's gradient stored by the product before it, each read by ops that round them to bf16 anyway (at the
// shapes whose attention takes bf16 operands: T <= 64, head size <= 64). Every result must be the bits of the same
// ops on fp32 arrays (helpers/attention-bf16.mjs, which gpu-check runs on a GPU too): on the CPU always, and on CUDA
// (a GPU, or the host emulator in CI). Then the checks of bad arguments, the arena's sizes, and BertModel: a bf16 model
// trained with them (the default on CUDA) ends with the weights of one trained without (SIMCSEPP_ATTENTION_STORAGE).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaStatus } from '../lib/index.js'
import { addon } from '../lib/native.js'
import { Bf16Values } from '../lib/bf16-values.js'
import { Tensor, type Device } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { BertModel } from '../lib/model/bert.js'
import { floatsFor, attentionKeptBf16, keepsProbs, ActivationArena } from '../lib/model/activations.js'
import { viewFloats } from '../lib/model/view-arena.js'
import { train } from '../lib/train/train.js'
import { tinyConfig } from './helpers/encoder-tiny-model.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'
import { ATTENTION_BF16_SHAPES, attentionBf16Checks } from './helpers/attention-bf16.mjs'
import { withEnv } from './helpers/with-env.js'

const status = cudaStatus()
const devices: Device[] = status.available ? ['cpu', 'cuda'] : ['cpu']

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
    bf16: (shape: number[]) =>
      new Bf16Values(
        keep(Tensor.from(new Float32Array(Math.ceil(size(shape) / 2)).fill(NaN), [Math.ceil(size(shape) / 2)], device)),
        shape,
      ),
    dispose: () => held.forEach((x) => x.dispose()),
  }
}

for (const device of devices) {
  t.test(`${device}: the attention's arrays in bf16 give the bits of the fp32 arrays`, async (t) => {
    for (const shape of ATTENTION_BF16_SHAPES)
      for (const check of attentionBf16Checks({ Tensor, ops, Bf16Values }, device, shape)) t.ok(check.ok, check.message)
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
      /bf16Shape needs precision 'bf16', T <= 128 and a head size <= 64/,
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
    const long = d.bf16([B, 129, H])
    t.throws(
      () =>
        ops.attentionForward(
          long,
          null,
          d.bf16([B, 129, 3 * H]),
          null,
          null,
          new Int32Array(B * 129).fill(1),
          NH,
          null,
          false,
          null,
          'bf16',
        ),
      /T <= 128/,
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
    // Both in bf16 (a sublayer output stored from ctx): R from out's values (rows), which inp must hold.
    t.throws(() => ops.linearForward(d.bf16([BT + 2, 6]), ctx, W, null, 'bf16'), /Expected inp to hold/)
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
  const c = tinyConfig({ hiddenSize: 32, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 160 })
  const H = c.hiddenSize,
    L = c.numHiddenLayers
  const v = viewFloats // each view's floats in the arena
  for (const [B, T] of [
    [3, 7],
    [2, 32],
    [4, 33],
    [4, 64],
    [2, 65],
    [1, 128],
    [2, 129],
  ]) {
    const BT = B * T
    const kept = attentionKeptBf16(c, T, true)
    t.equal(kept, T <= 128, `T = ${T}: kept in bf16 ${kept}`)
    const fewer = (n: number) => v(n) - v(Math.ceil(n / 2)) // a view of n floats kept as Bf16Values
    // Up to 32 tokens CUDA's backward forms P itself: no probs kept (keepsProbs).
    const formed = kept && T <= 32
    t.equal(keepsProbs(c, T, true), T <= 128 && !formed, `T = ${T}: probs kept ${!formed}`)
    t.equal(keepsProbs(c, T, false), T <= 128, `T = ${T}: probs kept in fp32 up to 128 tokens`)
    const probs = formed ? L * v(B * c.numAttentionHeads * T * T) : 0
    const saved = (kept ? L * (fewer(3 * BT * H) + fewer(BT * H)) + fewer(BT * H) : 0) + probs
    // The LayerNorms' and GELUs' kept copies (keepsNormCopies, keepsGeluCopies, which attentionBf16 allows) apart:
    // bf16-operands.test.ts counts them.
    t.equal(
      floatsFor(c, B, T, true, true, false, false, true, false) - floatsFor(c, B, T, true, true, true, false, true, false),
      saved,
      `T = ${T}: ${saved} floats fewer`,
    )
    t.equal(floatsFor(c, B, T, false, true, true), floatsFor(c, B, T, false), `T = ${T}: inference unchanged`)
  }
  t.notOk(attentionKeptBf16(tinyConfig({ hiddenSize: 130, numAttentionHeads: 2 }), 8, true), 'a head of 65 columns: fp32')
  // The limits come from the addon (native/ops/encoder.h), which checks its arguments.
  t.ok(addon.attentionTakesBf16(128, 64), 'the addon: T = 128, heads of 64')
  t.notOk(addon.attentionTakesBf16(129, 64), 'the addon: T = 129')
  t.notOk(addon.attentionTakesBf16(1, 65), 'the addon: heads of 65')
  t.ok(addon.attentionFormsProbs(32, 64), "the addon: CUDA's backward forms P up to 32 tokens")
  t.notOk(addon.attentionFormsProbs(33, 64), 'the addon: not at 33')
  t.notOk(addon.attentionFormsProbs(8, 65), 'the addon: nor with heads of 65 columns (fp32 attention)')
  t.equal(await withEnv({ SIMCSEPP_ATTENTION_PROBS: 'keep' }, () => keepsProbs(c, 7, true)), true, 'SIMCSEPP_ATTENTION_PROBS=keep')
  t.equal(await withEnv({ SIMCSEPP_ATTENTION_PROBS: 'keep' }, () => keepsProbs(c, 129, true)), false, 'keep: up to 128 tokens')
  await t.rejects(
    withEnv({ SIMCSEPP_ATTENTION_PROBS: 'never' }, () => keepsProbs(c, 7, true)),
    /^SIMCSEPP_ATTENTION_PROBS must be auto or keep, got "never"/,
  )
  for (const [T, HS, name] of [
    [0, 64, 'T'],
    [8, 1.5, 'headSize'],
  ] as const) {
    t.throws(() => addon.attentionTakesBf16(T, HS), new RegExp(`\\b${name}\\b`), `${name} checked`)
    t.throws(() => addon.attentionFormsProbs(T, HS), new RegExp(`\\b${name}\\b`), `attentionFormsProbs: ${name} checked`)
  }
  // The arena carves them as Bf16Values of ceil(n / 2) floats (T <= 128), else as Tensors; inference keeps fp32.
  const arena = new ActivationArena(c, 'cpu', true, true)
  t.teardown(() => arena.dispose())
  for (const T of [7, 65, 129]) {
    const a = arena.acquire(3, T, true)
    const n = 3 * T * c.hiddenSize
    const sizes = [...a.layers.flatMap((l) => [l.qkv, l.ctx]), a.gCtx].map((x) => (x instanceof Bf16Values ? x.storage.numel : -x.numel))
    const want = T <= 128 ? [Math.ceil((3 * n) / 2), Math.ceil(n / 2)] : [-3 * n, -n]
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
