// `simcsepp bench attention`: the attention op, forward + backward as training runs it (a padding mask and dropout),
// on every path a device has at each length: on the CPU in fp32 and bf16; on CUDA the tiled SGEMMs and the fused
// fp32 kernels (SIMCSEPP_ATTENTION=tiled / fused, read at each call) and the tensor-core kernels at bf16; each with
// the softmax probabilities kept by the forward for the backward, and without them (the backward forms them again:
// what training does beyond 128 tokens, and at bf16 on CUDA up to 32). A path that does not take a shape gives a
// row with its reason. Milliseconds per forward + backward pair, and the model FLOP/s of its products.
import { addon } from '../native.js'
import * as ops from '../ops.js'
import { Tensor, type Device } from '../tensor.js'
import { median } from './median.js'

export interface AttentionBenchOptions {
  /** Sentences (the training step's 3 views of a batch count three times). */
  batch: number
  seqLens: number[]
  heads: number
  headSize: number
  devices: Device[]
  /** Time per measurement, seconds (at least 3 pairs). Default 1. */
  seconds?: number
  log: (line: string) => void
}

export type AttentionPath = 'cpu fp32' | 'cpu bf16' | 'tiled' | 'fused' | 'tensor cores'

export interface AttentionBenchRow {
  device: Device
  path: AttentionPath
  batch: number
  seqLen: number
  heads: number
  headSize: number
  /** Whether the forward kept the probabilities for the backward, or the backward formed them again. */
  probs: 'kept' | 'formed'
  /** Median milliseconds per forward + backward pair (0 with a note: the path refused the shape). */
  ms: number
  /** The products' model FLOPs (attentionFlops) per second, TFLOP/s. */
  tflops: number
  /** Time against the first row of the same device, length and probs: how much faster (> 1) or slower. */
  speedup: number
  note?: string
}

/**
 * FLOPs of one forward + backward pair: per sentence and head, the forward's two T x T x HS products (scores,
 * context) and the backward's four (dP, dV, dQ, dK), 2 FLOPs a multiply-add. Forming the probabilities again in the
 * backward is work the model does not count.
 */
export function attentionFlops(batch: number, seqLen: number, heads: number, headSize: number): number {
  return 12 * batch * heads * seqLen * seqLen * headSize
}

const PATHS: Record<Device, AttentionPath[]> = { cpu: ['cpu fp32', 'cpu bf16'], cuda: ['tiled', 'fused', 'tensor cores'] }

/** The fused fp32 kernels' largest length and head size (kernels/attention.cu, use_fused): beyond, the tiled path runs. */
const FUSED_MAX = 128

export function benchAttention(o: AttentionBenchOptions): AttentionBenchRow[] {
  const rows: AttentionBenchRow[] = []
  const before = process.env.SIMCSEPP_ATTENTION
  try {
    for (const device of o.devices)
      for (const T of o.seqLens)
        for (const probs of ['kept', 'formed'] as const) {
          let first = 0
          for (const path of PATHS[device]) {
            const row = measure(o, device, path, T, probs)
            if (row.ms > 0 && first === 0) first = row.ms
            row.speedup = row.ms > 0 && first > 0 ? first / row.ms : 0
            rows.push(row)
            o.log(`${device} ${path} T=${T} probs ${probs}: ${row.note ?? `${row.ms.toFixed(3)} ms`}`)
          }
        }
  } finally {
    if (before === undefined) delete process.env.SIMCSEPP_ATTENTION
    else process.env.SIMCSEPP_ATTENTION = before
  }
  return rows
}

function measure(o: AttentionBenchOptions, device: Device, path: AttentionPath, T: number, probs: 'kept' | 'formed'): AttentionBenchRow {
  const { batch: B, heads: NH, headSize: HS } = o
  const row: AttentionBenchRow = { device, path, batch: B, seqLen: T, heads: NH, headSize: HS, probs, ms: 0, tflops: 0, speedup: 0 }
  const precision = path === 'cpu bf16' || path === 'tensor cores' ? 'bf16' : 'fp32'
  // A path that would hand the shape to another path is not timed under its name.
  if (path === 'tensor cores' && !addon.attentionTakesBf16(T, HS)) {
    row.note = 'takes up to 128 tokens and heads of up to 64 columns'
    return row
  }
  if (path === 'fused' && (T > FUSED_MAX || HS > FUSED_MAX || probs === 'formed')) {
    row.note = `takes up to ${FUSED_MAX} tokens and heads of ${FUSED_MAX} columns, with the probabilities kept`
    return row
  }
  // (the tensor-core kernels do not read the variable: 'fused' is its default)
  if (device === 'cuda') process.env.SIMCSEPP_ATTENTION = path === 'tiled' ? 'tiled' : 'fused'
  const H = NH * HS
  let s = 1
  const random = () => Float32Array.from({ length: B * T * H }, () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5)
  const held: Tensor[] = []
  const keep = (x: Tensor) => (held.push(x), x)
  try {
    const [q, k, v, dctx] = [random(), random(), random(), random()].map((a) => keep(Tensor.from(a, [B, T, H], device)))
    const [ctx, dq, dk, dv] = [0, 1, 2, 3].map(() => keep(Tensor.zeros([B, T, H], device)))
    const P = probs === 'kept' ? keep(Tensor.zeros([B, NH, T, T], device)) : null
    const sync = keep(Tensor.zeros([1], device))
    // Every ninth sentence full, the others shorter by up to 8 padded tokens (as length-sorted batches are).
    const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < T - (Math.floor(i / T) % 9) ? 1 : 0))
    const site = { p: 0.1, seed: 5, offset: 0, keepRows: null }
    const pair = () => {
      ops.attentionForward(ctx, P, q, k, v, mask, NH, site, false, null, precision)
      ops.attentionBackward(dq, dk, dv, dctx, q, k, v, P, mask, NH, site, false, null, null, precision)
    }
    // CUDA only launches: a round is timed from before its launches to a host read after them.
    const round = (reps: number) => {
      const start = performance.now()
      for (let r = 0; r < reps; r++) pair()
      sync.toFloat32Array()
      return (performance.now() - start) / reps
    }
    const first = round(1) // warm: workspaces, the device copies of the mask
    const reps = Math.max(1, Math.min(1000, Math.floor(((o.seconds ?? 1) * 1000) / 3 / Math.max(first, 1e-3))))
    row.ms = median([round(reps), round(reps), round(reps)])
    row.tflops = attentionFlops(B, T, NH, HS) / (row.ms / 1000) / 1e12
  } catch (e) {
    row.note = (e as Error).message.split('\n')[0]
  } finally {
    held.forEach((x) => x.dispose())
  }
  return row
}
