// The attention's arrays kept in bfloat16 (Bf16Values), checked against the same ops on fp32 arrays on one device:
// the q | k | v product stored rounded, the attention reading it and storing ctx rounded, attention.output.dense
// reading ctx and storing ctx's gradient rounded, the attention's backward reading both. Every result must be the
// fp32 arrays' bits (the readers round those values to bf16 anyway). Shared by test/attention-bf16-storage.test.ts
// (tap, lib/, CPU and CUDA) and scripts/gpu-check.mjs (dist/, on a GPU: with the real cuBLASLt's bf16 outputs).
// Plain JavaScript with JSDoc types, written against an injected `lib`.
import { roundBf16Array } from './bf16-round.mjs'
import { bitEqual } from './parity.mjs'

/**
 * @typedef {'cpu' | 'cuda'} Device
 * @typedef {import('../../lib/tensor.js').Tensor} Tensor
 * @typedef {import('../../lib/bf16-values.js').Bf16Values} Bf16Values
 * @typedef {{
 *   Tensor: typeof import('../../lib/tensor.js').Tensor,
 *   ops: typeof import('../../lib/ops.js'),
 *   Bf16Values: typeof import('../../lib/bf16-values.js').Bf16Values,
 * }} Bf16Lib
 * @typedef {{ ok: boolean, message: string }} Check
 */

/**
 * [B, T, NH, HS]: T = 1; odd T (13) with an odd B * T * 3H; T = 32 and 33 (both of CUDA's kernel sizes); one head; odd
 * head sizes (no 4-column loads on CUDA); T = 64, the longest of the kernels that hold a head whole; 65, 72 and 128,
 * CUDA's long kernels (queries 64 rows at a time).
 * @type {[number, number, number, number][]}
 */
export const ATTENTION_BF16_SHAPES = [
  [3, 1, 2, 8],
  [3, 13, 3, 5],
  [4, 32, 2, 16],
  [2, 33, 2, 12],
  [2, 20, 1, 24],
  [2, 64, 2, 7],
  [2, 65, 2, 16], // the long kernels (64 < T <= 128): two query chunks, the second of one row
  [1, 72, 3, 7], // 8 bf16 a load from the scratch (T a multiple of 8), with padding
  [1, 128, 2, 64],
]

/** B sentences' masks over T tokens: random lengths from an LCG (the first sentence full). */
function paddingMask(/** @type {number} */ B, /** @type {number} */ T, /** @type {number} */ seed) {
  let s = seed >>> 0
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32
  const mask = new Int32Array(B * T)
  for (let b = 0; b < B; b++) {
    const len = b === 0 ? T : 1 + Math.floor(next() * T)
    for (let i = 0; i < len; i++) mask[b * T + i] = 1
  }
  return mask
}

/** Runs fn with SIMCSEPP_BF16_OUTPUT=0 (the bf16 outputs written in fp32 and rounded after), restoring it. */
function withFp32Outputs(/** @type {() => void} */ fn) {
  const before = process.env.SIMCSEPP_BF16_OUTPUT
  process.env.SIMCSEPP_BF16_OUTPUT = '0'
  try {
    fn()
  } finally {
    if (before === undefined) delete process.env.SIMCSEPP_BF16_OUTPUT
    else process.env.SIMCSEPP_BF16_OUTPUT = before
  }
}

/**
 * The chain at one shape on `device`, bf16 arrays against fp32 ones: one check per result (0 differing elements).
 * @param {Bf16Lib} lib
 * @param {Device} device
 * @param {[number, number, number, number]} shape [B, T, NH, HS]
 * @returns {Check[]}
 */
export function attentionBf16Checks(lib, device, [B, T, NH, HS]) {
  const { Tensor, ops, Bf16Values } = lib
  const H = NH * HS,
    BT = B * T,
    C = 10
  /** @type {Tensor[]} */
  const held = []
  const size = (/** @type {number[]} */ s) => s.reduce((p, d) => p * d, 1)
  const keep = (/** @type {Tensor} */ x) => (held.push(x), x)
  const sine = (/** @type {number[]} */ s, /** @type {number} */ seed, scale = 1) =>
    keep(
      Tensor.from(
        Float32Array.from({ length: size(s) }, (_, i) => scale * Math.sin(seed * 3.1 + i * 0.71)),
        s,
        device,
      ),
    )
  const nans = (/** @type {number[]} */ s) => keep(Tensor.from(new Float32Array(size(s)).fill(NaN), s, device))
  const of = (/** @type {Float32Array} */ v, /** @type {number[]} */ s) => keep(Tensor.from(v, s, device))
  const zeros = (/** @type {number[]} */ s) => keep(Tensor.zeros(s, device))
  const bf16 = (/** @type {number[]} */ s) => new Bf16Values(nans([Math.ceil(size(s) / 2)]), s)
  const what = `${device} B=${B} T=${T} NH=${NH} HS=${HS}`
  /** @type {Check[]} */
  const checks = []
  const same = (/** @type {Float32Array} */ a, /** @type {Float32Array} */ b, /** @type {string} */ name) => {
    const r = bitEqual(a, b)
    checks.push({ ok: r.equal, message: `${what}: ${name} (${r.diff} of ${r.total} elements differ)` })
  }
  try {
    const mask = paddingMask(B, T, B * 7 + T)
    const dropout = { p: 0.2, seed: 11, offset: 3n, keepRows: null, firstRow: 0 }
    const x = sine([BT, C], 1),
      wQkv = sine([3 * H, C], 2, 0.4),
      bQkv = sine([3 * H], 3),
      wOut = sine([C, H], 4, 0.3),
      bOut = sine([C], 5),
      dy = sine([BT, C], 6)
    // The q | k | v product: stored rounded (and written in fp32 and rounded after, on CUDA).
    const qkv32 = nans([B, T, 3 * H]),
      qkv16 = bf16([B, T, 3 * H])
    ops.linearForward(qkv32.view(0, [BT, 3 * H]), x, wQkv, bQkv, 'bf16')
    ops.linearForward(qkv16, x, wQkv, bQkv, 'bf16')
    const rounded = roundBf16Array(qkv32.toFloat32Array())
    same(qkv16.toFloat32Array(), rounded, 'q | k | v stored as bf16(product)')
    if (device === 'cuda') {
      const again = bf16([B, T, 3 * H])
      withFp32Outputs(() => ops.linearForward(again, x, wQkv, bQkv, 'bf16'))
      same(again.toFloat32Array(), rounded, 'q | k | v written in fp32 and rounded after')
    }
    // The attention: fp32 arrays of the rounded values against the bf16 ones (probs kept, dropout).
    const qkvR = of(rounded, [B, T, 3 * H])
    const ctx32 = nans([B, T, H]),
      ctx16 = bf16([B, T, H]),
      probs32 = nans([B, NH, T, T]),
      probs16 = nans([B, NH, T, T])
    ops.attentionForward(ctx32, probs32, qkvR, null, null, mask, NH, dropout, false, null, 'bf16')
    ops.attentionForward(ctx16, probs16, qkv16, null, null, mask, NH, dropout, false, null, 'bf16')
    const ctxRounded = roundBf16Array(ctx32.toFloat32Array())
    same(ctx16.toFloat32Array(), ctxRounded, 'ctx stored as bf16(ctx)')
    same(probs16.toFloat32Array(), probs32.toFloat32Array(), 'the probabilities')
    // attention.output.dense reads ctx: as from the fp32 ctx (which it rounds).
    const h32 = nans([BT, C]),
      h16 = nans([BT, C])
    ops.linearForward(h32, ctx32.view(0, [BT, H]), wOut, bOut, 'bf16')
    ops.linearForward(h16, ctx16, wOut, bOut, 'bf16')
    same(h16.toFloat32Array(), h32.toFloat32Array(), 'the next product')
    // Its backward: dctx stored rounded; the weight and bias gradients from the bf16 ctx as from the fp32 one.
    const backward = (/** @type {Tensor | Bf16Values} */ gCtx, /** @type {Tensor | Bf16Values} */ ctx) => {
      const dW = zeros([C, H]),
        db = zeros([C])
      ops.linearBackward(gCtx, dW, db, dy, ctx, wOut, false, 'bf16')
      return [dW.toFloat32Array(), db.toFloat32Array()]
    }
    const gCtx32 = nans([B, T, H]),
      gCtx16 = bf16([B, T, H])
    const [dW32, db32] = backward(gCtx32.view(0, [BT, H]), ctx32.view(0, [BT, H]))
    const [dW16, db16] = backward(gCtx16, ctx16)
    const gRounded = roundBf16Array(gCtx32.toFloat32Array())
    same(gCtx16.toFloat32Array(), gRounded, 'dctx stored as bf16(dctx)')
    same(dW16, dW32, "attention.output.dense's weight gradient")
    same(db16, db32, 'its bias gradient')
    if (device === 'cuda') {
      const again = bf16([B, T, H])
      withFp32Outputs(() => backward(again, ctx16))
      same(again.toFloat32Array(), gRounded, 'dctx written in fp32 and rounded after')
    }
    // The attention's backward from the bf16 arrays: as from fp32 ones of their values, with probs and without.
    const dctxR = of(gRounded, [B, T, H])
    for (const probs of [probs32, null]) {
      const dq32 = nans([B, T, 3 * H]),
        dq16 = nans([B, T, 3 * H]),
        sums32 = zeros([3 * H]),
        sums16 = zeros([3 * H])
      ops.attentionBackward(dq32, null, null, dctxR, qkvR, null, null, probs, mask, NH, dropout, false, null, null, 'bf16', sums32)
      ops.attentionBackward(dq16, null, null, gCtx16, qkv16, null, null, probs, mask, NH, dropout, false, null, null, 'bf16', sums16)
      const p = probs ? 'probs kept' : 'P formed again'
      same(dq16.toFloat32Array(), dq32.toFloat32Array(), `${p}: dq | dk | dv`)
      same(sums16.toFloat32Array(), sums32.toFloat32Array(), `${p}: the q/k/v bias gradient`)
    }
  } finally {
    held.forEach((t) => t.dispose())
  }
  return checks
}
