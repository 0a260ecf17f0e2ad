// Dropout masks do not depend on how a batch is split (issue 12's foundation): a micro-batch that says
// where its first row sits in the whole batch (firstRow) draws exactly the whole batch's masks, in the
// dropout op, in attention, and through the encoder, so a chunked forward and backward reproduce the
// unchunked ones. On the CPU and, when it is usable, on CUDA (a GPU or the emulator).
import t from 'tap'
import { cudaStatus, dropout, Tensor } from '../lib/index.js'
import * as ops from '../lib/ops.js'
import { BertModel } from '../lib/model/bert.js'
import { namedConfig } from '../lib/model/config.js'
import { randn } from './helpers/parity.mjs'

const status = cudaStatus()
const devices = status.available ? (['cpu', 'cuda'] as const) : (['cpu'] as const)

/** max |a - b| / max |b| (0 when equal). */
function rel(a: Float32Array, b: Float32Array): number {
  let num = 0,
    den = 0
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]))
    den = Math.max(den, Math.abs(b[i]))
  }
  return den === 0 ? num : num / den
}

for (const device of devices) {
  t.test(`${device}: the dropout op with firstRow gives the whole batch's masks, bit for bit`, async (t) => {
    const [R, C] = [9, 7] // C not a multiple of 4: Philox groups straddle the chunk boundary
    const x = randn(R * C, 1)
    const keep = Uint8Array.from([1, 1, 0, 1, 1, 1, 0, 1, 1])
    const full = dropout(Tensor.from(x, [R, C], device), { p: 0.3, seed: 7, offset: 3, keepRows: keep }).toFloat32Array()
    for (const split of [1, 3, 4]) {
      const a = dropout(Tensor.from(x.subarray(0, split * C), [split, C], device), {
        p: 0.3,
        seed: 7,
        offset: 3,
        keepRows: keep.subarray(0, split),
      }).toFloat32Array()
      const b = dropout(Tensor.from(x.subarray(split * C), [R - split, C], device), {
        p: 0.3,
        seed: 7,
        offset: 3,
        keepRows: keep.subarray(split),
        firstRow: split,
      }).toFloat32Array()
      const joined = new Float32Array(R * C)
      joined.set(a)
      joined.set(b, split * C)
      t.same(new Uint32Array(joined.buffer), new Uint32Array(full.buffer), `split after row ${split}`)
    }
    t.throws(() => dropout(Tensor.from(x, [R, C], device), { p: 0.3, seed: 7, firstRow: -1 }), /firstRow/)
  })

  t.test(`${device}: attention with firstRow reproduces the whole batch's rows, forward and backward`, async (t) => {
    const [B, T, NH, HS] = [5, 6, 2, 4]
    const H = NH * HS
    const q = randn(B * T * H, 2),
      k = randn(B * T * H, 3),
      v = randn(B * T * H, 4),
      g = randn(B * T * H, 5)
    const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < T - (Math.floor(i / T) % 3) ? 1 : 0))
    const keep = Uint8Array.from([1, 0, 1, 1, 1])
    const run = (b0: number, n: number) => {
      const slice = (a: Float32Array) => Tensor.from(a.subarray(b0 * T * H, (b0 + n) * T * H), [n, T, H], device)
      const [tq, tk, tv, tg] = [q, k, v, g].map(slice)
      const ctx = Tensor.zeros([n, T, H], device),
        probs = Tensor.zeros([n, NH, T, T], device)
      const site = { p: 0.25, seed: 11, offset: 5, keepRows: keep.subarray(b0, b0 + n), firstRow: b0 }
      const m = mask.subarray(b0 * T, (b0 + n) * T)
      ops.attentionForward(ctx, probs, tq, tk, tv, m, NH, site)
      const [dq, dk, dv] = [0, 1, 2].map(() => Tensor.zeros([n, T, H], device))
      ops.attentionBackward(dq, dk, dv, tg, tq, tk, tv, probs, m, NH, site)
      return [ctx, dq, dk, dv].map((x) => x.toFloat32Array())
    }
    const full = run(0, B)
    const parts = [run(0, 2), run(2, 3)]
    ;['ctx', 'dq', 'dk', 'dv'].forEach((name, i) => {
      const joined = new Float32Array(full[i].length)
      joined.set(parts[0][i])
      joined.set(parts[1][i], parts[0][i].length)
      const d = rel(joined, full[i])
      t.ok(d <= 1e-6, `${name}: ${d.toExponential(2)}`)
    })
  })

  t.test(`${device}: an encoder pass in micro-batches equals the whole batch (z and parameter gradients)`, async (t) => {
    const config = { ...namedConfig('tiny', 40), hiddenSize: 24, numAttentionHeads: 2, intermediateSize: 40, maxPositionEmbeddings: 16 }
    const model = BertModel.create(config, { device, mlp: true, seed: 4 })
    const [B, T] = [6, 7]
    let s = 17
    const inputIds = Int32Array.from({ length: B * T }, () => (s = (s * 1103515245 + 12345) >>> 0) % 40)
    const attentionMask = Int32Array.from({ length: B * T }, (_, i) => (i % T < T - (Math.floor(i / T) % 4) ? 1 : 0))
    const keepRows = Uint8Array.from([1, 1, 1, 1, 0, 0])
    const dz = randn(B * config.hiddenSize, 9)
    const H = config.hiddenSize
    const pass = (b0: number, n: number) => {
      const batch = {
        inputIds: inputIds.subarray(b0 * T, (b0 + n) * T),
        attentionMask: attentionMask.subarray(b0 * T, (b0 + n) * T),
        shape: [n, T],
      }
      const z = model.trainForward(batch, { seed: 3, step: 2, keepRows: keepRows.subarray(b0, b0 + n), firstRow: b0 })
      const zHost = z.toFloat32Array()
      model.trainBackward(Tensor.from(dz.subarray(b0 * H, (b0 + n) * H), [n, H], device))
      return zHost
    }
    model.zeroGrad()
    const zFull = pass(0, B)
    const gFull = model.grads.toFloat32Array()
    model.zeroGrad()
    const z1 = pass(0, 2),
      z2 = pass(2, 4) // gradients accumulate across the two micro-batches
    const gChunks = model.grads.toFloat32Array()
    const z = new Float32Array(zFull.length)
    z.set(z1)
    z.set(z2, z1.length)
    t.ok(rel(z, zFull) <= 1e-6, `z: ${rel(z, zFull).toExponential(2)}`)
    t.ok(rel(gChunks, gFull) <= 1e-5, `parameter gradients: ${rel(gChunks, gFull).toExponential(2)}`)
    // Without firstRow the second micro-batch would draw the first rows' masks: a different z.
    const wrong = model.trainForward(
      { inputIds: inputIds.subarray(2 * T), attentionMask: attentionMask.subarray(2 * T), shape: [4, T] },
      { seed: 3, step: 2, keepRows: keepRows.subarray(2) },
    )
    t.ok(rel(wrong.toFloat32Array(), zFull.subarray(2 * H)) > 1e-3, 'firstRow matters')
    model.dispose()
  })
}
