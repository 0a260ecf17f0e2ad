// The CPU attention forward in blocks of query rows (native/cpu/attention.cpp, forward_rows): the same bits
// whatever the blocking (ctx and the saved probabilities, with padding keys, dropout and a relative-position
// bias), and memory that does not grow as T x T per thread: a 8192-token head (ModernBERT's length) used to
// reserve four T x T blocks (1 GiB) in each thread. With a sliding-window bias (ModernBERT's local layers) a
// block computes only the keys its rows reach; one whole block (SIMCSEPP_ATTENTION_ROW_BLOCK=1000000) computes
// them all, so the comparison holds the skipping to the whole rows, padding rows that reach no real key
// included. SIMCSEPP_ATTENTION_ROW_BLOCK (read once) forces a blocking, so each runs in its own process.
import t from 'tap'
import { runSelfAsChild } from './helpers/self-child.js'
import { Tensor } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { randn } from './helpers/parity.mjs'

// [B, T, NH, HS]: a short batch (one block unless forced), T = 1100 (which the default blocking splits), and a
// sliding window of reach 20 (-1e30 beyond, as lib/model/modernbert.ts) over T = 300, the second sentence 50
// real tokens (its query rows from 71 on reach only padding keys).
const shapes: [number, number, number, number][] = [
  [2, 37, 2, 20],
  [1, 1100, 1, 8],
  [2, 300, 2, 16],
]
const WINDOWED = 2
const REACH = 20

function results(): string[] {
  const bits: string[] = []
  const keep = (x: Tensor) => bits.push(Buffer.from(x.toFloat32Array().buffer).toString('base64'))
  shapes.forEach(([B, T, NH, HS], i) => {
    const H = NH * HS
    const real = (b: number) => (i === WINDOWED && b === 1 ? 50 : T - 5 * b)
    const mask = Int32Array.from({ length: B * T }, (_, j) => (j % T < real(Math.floor(j / T)) ? 1 : 0))
    const qkv = Tensor.from(randn(B * T * 3 * H, 90 + i), [B, T, 3 * H])
    const bias = randn((2 * T - 1) * NH, 95 + i)
    if (i === WINDOWED) bias.forEach((_, k) => (bias[k] = Math.abs(Math.floor(k / NH) - (T - 1)) > REACH ? -1e30 : 0))
    const relBias = Tensor.from(bias, [2 * T - 1, NH])
    for (const drop of [null, { p: 0.2, seed: 7 + i, offset: 2, keepRows: Uint8Array.from({ length: B }, (_, b) => (b === 1 ? 0 : 1)) }]) {
      const ctx = Tensor.zeros([B, T, H]),
        probs = Tensor.zeros([B, NH, T, T]),
        plain = Tensor.zeros([B, T, H])
      ops.attentionForward(ctx, probs, qkv, null, null, mask, NH, drop, false, relBias)
      ops.attentionForward(plain, null, qkv, null, null, mask, NH, drop, false, relBias)
      for (const x of [ctx, probs, plain]) keep(x)
    }
  })
  return bits
}

/** RSS growth (MiB) of one forward over a head of 8192 tokens (B = 1, one head of 64: one thread's pair). */
function longForwardGrowth(): number {
  const T = 8192,
    HS = 64
  const qkv = Tensor.from(randn(T * 3 * HS, 5, 0.1), [1, T, 3 * HS])
  const ctx = Tensor.zeros([1, T, HS])
  const mask = new Int32Array(T).fill(1)
  const before = process.memoryUsage().rss
  ops.attentionForward(ctx, null, qkv, null, null, mask, 1, null)
  return (process.memoryUsage().rss - before) / 2 ** 20
}

if (process.env.SIMCSEPP_ROW_BLOCK_TEST_CHILD === 'memory') {
  process.stdout.write(JSON.stringify(longForwardGrowth()))
} else if (process.env.SIMCSEPP_ROW_BLOCK_TEST_CHILD) {
  process.stdout.write(JSON.stringify(results()))
} else {
  const run = (rows: string | undefined) =>
    runSelfAsChild<string[]>(import.meta.url, 'SIMCSEPP_ROW_BLOCK_TEST_CHILD', { SIMCSEPP_ATTENTION_ROW_BLOCK: rows })
  const whole = run('1000000')
  const label = (k: number) => {
    const [B, T, NH, HS] = shapes[Math.floor(k / 6)]
    return `${['ctx', 'probs', 'ctx without probs'][k % 3]} ${k % 6 < 3 ? 'without' : 'with'} dropout, B=${B} T=${T} NH=${NH} HS=${HS}`
  }
  for (const rows of [undefined, '1', '5', '16', '100']) {
    t.test(`attention forward in blocks of ${rows ?? 'the default'} rows: the bits of whole pairs`, async (t) => {
      const got = run(rows)
      t.equal(got.length, whole.length)
      got.forEach((b, k) => t.ok(b === whole[k], label(k)))
    })
  }
  t.test('a forward over 8192 tokens holds megabytes, not T x T floats per thread', async (t) => {
    const growth = runSelfAsChild<number>(import.meta.url, 'SIMCSEPP_ROW_BLOCK_TEST_CHILD', { SIMCSEPP_ROW_BLOCK_TEST_CHILD: 'memory' })
    // One T x T block of floats is 256 MiB; the blocked forward needs ~6 MiB of scratch.
    t.ok(growth < 128, `RSS grew by ${growth.toFixed(1)} MiB`)
  })
}
