// Dropout masks do not depend on how a batch is split (issue 12's foundation): a micro-batch that says
// where its first row sits in the whole batch (firstRow) draws exactly the whole batch's masks, in the
// dropout op, in attention, and through the encoder, so a chunked forward and backward reproduce the
// unchunked ones. On the CPU and, when it is usable, on CUDA (a GPU or the emulator).
import t from 'tap'
import { cudaStatus, dropout, Tensor, type RowPlacement } from '../lib/index.js'
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

  // A data-parallel rank holds sentences [s0, s0 + m) of each of V views of n sentences: V runs of m rows,
  // n apart, passed as one batch with firstRow { first: s0, block: m, stride: n, skip } (skip: where a pass
  // starts among the rank's rows).
  const rankRows = (n: number, s0: number, m: number, l0: number, count: number) =>
    Array.from({ length: count }, (_, i) => Math.floor((l0 + i) / m) * n + s0 + ((l0 + i) % m))
  const gatherRows = (a: Float32Array, rows: number[], width: number) => {
    const out = new Float32Array(rows.length * width)
    rows.forEach((r, i) => out.set(a.subarray(r * width, (r + 1) * width), i * width))
    return out
  }

  t.test(`${device}: a rank's runs of rows (RowPlacement) draw the whole batch's dropout masks, bit for bit`, async (t) => {
    const [V, n] = [3, 5]
    const R = V * n
    for (const C of [7, 8]) {
      // C = 8: whole float4 groups (CUDA's vector path); C = 7: groups straddle rows
      const x = randn(R * C, C)
      const keep = Uint8Array.from({ length: R }, (_, r) => (r % 4 === 3 ? 0 : 1))
      const site = { p: 0.3, seed: 7, offset: 3 }
      const full = dropout(Tensor.from(x, [R, C], device), { ...site, keepRows: keep }).toFloat32Array()
      // [s0, m, l0, count]: a whole rank; a pass starting inside a run; one ending inside a run; a rank of all
      // sentences (m = n: the runs touch) in a pass over two views.
      for (const [s0, m, l0, count] of [
        [1, 2, 0, 6],
        [1, 2, 1, 4],
        [3, 2, 3, 3],
        [0, 5, 2, 9],
      ]) {
        const rows = rankRows(n, s0, m, l0, count)
        const got = dropout(Tensor.from(gatherRows(x, rows, C), [count, C], device), {
          ...site,
          keepRows: Uint8Array.from(rows, (r) => keep[r]),
          firstRow: { first: s0, block: m, stride: n, skip: l0 },
        }).toFloat32Array()
        const want = gatherRows(full, rows, C)
        t.same(new Uint32Array(got.buffer), new Uint32Array(want.buffer), `C=${C}: rows ${rows.join(',')}`)
      }
    }
    const x = Tensor.from(randn(3 * 4, 1), [3, 4], device)
    const bad: [unknown, RegExp][] = [
      [{ first: 0, block: 0, stride: 1 }, /firstRow.*block >= 1/],
      [{ first: 0, block: 3, stride: 2 }, /firstRow.*stride >= block/],
      [{ first: -1, block: 1, stride: 1 }, /firstRow/],
      [{ first: 0, block: 1, stride: 1, skip: 0.5 }, /firstRow/],
      [{ first: 0, block: 1, stride: 1, step: 2 }, /firstRow: unknown field 'step'/],
      [[0, 1, 1], /firstRow/],
    ]
    for (const [firstRow, message] of bad)
      t.throws(() => dropout(x, { p: 0.3, seed: 7, firstRow: firstRow as never }), message, JSON.stringify(firstRow))
    // The addon checks that the rows' Philox indices stay below 2^62, naming the argument.
    const tall = Tensor.zeros([1025, 4], device)
    t.throws(
      () => dropout(tall, { p: 0.3, seed: 7, firstRow: { first: 0, block: 1, stride: 2 ** 52 } }),
      /firstRow to place the 1025 rows below row/,
    )
    t.doesNotThrow(() => dropout(tall, { p: 0.3, seed: 7, firstRow: { first: 0, block: 1, stride: 2 ** 40 } }), 'rows up to 2^50')
  })

  t.test(`${device}: attention over a rank's runs of rows reproduces the whole batch's rows, forward and backward`, async (t) => {
    const [V, n, T, NH, HS] = [2, 4, 6, 2, 4]
    const [B, H] = [V * n, NH * HS]
    const q = randn(B * T * H, 12),
      k = randn(B * T * H, 13),
      v = randn(B * T * H, 14),
      g = randn(B * T * H, 15)
    const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < T - (Math.floor(i / T) % 3) ? 1 : 0))
    const keep = Uint8Array.from({ length: B }, (_, b) => (b === 2 ? 0 : 1))
    const run = (rows: number[], firstRow: ops.DropoutSite['firstRow']) => {
      const m = rows.length
      const pick = (a: Float32Array) => Tensor.from(gatherRows(a, rows, T * H), [m, T, H], device)
      const [tq, tk, tv, tg] = [q, k, v, g].map(pick)
      const ctx = Tensor.zeros([m, T, H], device),
        probs = Tensor.zeros([m, NH, T, T], device)
      const site = { p: 0.25, seed: 11, offset: 5, keepRows: Uint8Array.from(rows, (r) => keep[r]), firstRow }
      const mk = Int32Array.from({ length: m * T }, (_, i) => mask[rows[Math.floor(i / T)] * T + (i % T)])
      ops.attentionForward(ctx, probs, tq, tk, tv, mk, NH, site)
      const [dq, dk, dv] = [0, 1, 2].map(() => Tensor.zeros([m, T, H], device))
      ops.attentionBackward(dq, dk, dv, tg, tq, tk, tv, probs, mk, NH, site)
      return [ctx, dq, dk, dv].map((x) => x.toFloat32Array())
    }
    const full = run(
      Array.from({ length: B }, (_, b) => b),
      0,
    )
    const rows = rankRows(n, 1, 2, 0, 4) // sentences 1, 2 of both views: rows 1, 2, 5, 6
    const part = run(rows, { first: 1, block: 2, stride: n })
    ;['ctx', 'dq', 'dk', 'dv'].forEach((name, i) => {
      const d = rel(part[i], gatherRows(full[i], rows, T * H))
      t.ok(d <= 1e-6, `${name}: ${d.toExponential(2)}`)
    })
    // Placed as rows 0..3 instead, they draw other masks.
    const wrong = run(rows, 0)
    t.ok(rel(wrong[0], gatherRows(full[0], rows, T * H)) > 1e-3, 'the placement matters')
  })

  t.test(`${device}: an encoder pass over a rank's runs of rows equals those rows of the whole batch`, async (t) => {
    const config = { ...namedConfig('tiny', 40), hiddenSize: 24, numAttentionHeads: 2, intermediateSize: 40, maxPositionEmbeddings: 16 }
    const model = BertModel.create(config, { device, mlp: true, seed: 5 })
    const [V, n, T] = [3, 4, 7]
    const [B, H] = [V * n, config.hiddenSize]
    let s = 29
    const inputIds = Int32Array.from({ length: B * T }, () => (s = (s * 1103515245 + 12345) >>> 0) % 40)
    const attentionMask = Int32Array.from({ length: B * T }, (_, i) => (i % T < T - (Math.floor(i / T) % 4) ? 1 : 0))
    const keepRows = Uint8Array.from({ length: B }, (_, r) => (r >= 2 * n ? 0 : 1)) // the last view without dropout
    const dz = randn(B * H, 19)
    const pass = (rows: number[], firstRow: RowPlacement) => {
      const pickI = (a: Int32Array) => Int32Array.from({ length: rows.length * T }, (_, i) => a[rows[Math.floor(i / T)] * T + (i % T)])
      const batch = { inputIds: pickI(inputIds), attentionMask: pickI(attentionMask), shape: [rows.length, T] }
      const z = model.trainForward(batch, { seed: 3, step: 4, keepRows: Uint8Array.from(rows, (r) => keepRows[r]), firstRow })
      const zHost = z.toFloat32Array()
      model.trainBackward(Tensor.from(gatherRows(dz, rows, H), [rows.length, H], device))
      return zHost
    }
    model.zeroGrad()
    const zFull = pass(
      Array.from({ length: B }, (_, b) => b),
      0,
    )
    const gFull = model.grads.toFloat32Array()
    // Two ranks (sentences [0, 2) and [2, 4) of each view), the second in passes of 4 and 2 rows (the first
    // pass spans views 1 and 2); the parameter gradients accumulate over all passes.
    model.zeroGrad()
    const passes: [number, number, number, number][] = [
      [0, 2, 0, 6],
      [2, 2, 0, 4],
      [2, 2, 4, 2],
    ]
    for (const [s0, m, l0, count] of passes) {
      const rows = rankRows(n, s0, m, l0, count)
      const z = pass(rows, { first: s0, block: m, stride: n, skip: l0 })
      const d = rel(z, gatherRows(zFull, rows, H))
      t.ok(d <= 1e-6, `z of rows ${rows.join(',')}: ${d.toExponential(2)}`)
    }
    const d = rel(model.grads.toFloat32Array(), gFull)
    t.ok(d <= 1e-5, `parameter gradients summed over the passes: ${d.toExponential(2)}`)
    model.dispose()
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
