// `simcsepp bench gemm`: GFLOP/s of the CPU SGEMM next to the system BLAS (OpenBLAS, when installed) in the
// same process, either at square BERT-base shapes (M = 2048 and 6144 rows, N and K in {768, 3072}, in the
// three forms training uses: forward A·Bᵀ, input-gradient A·B, weight-gradient Aᵀ·B) or at the products of
// one training step of a named model (gemmStepShapes).
import { addon } from '../native.js'
import { Tensor, nativeOf } from '../tensor.js'
import { median } from './median.js'

export type GemmForm = 'A·Bᵀ' | 'A·B' | 'Aᵀ·B'

export interface GemmShape {
  m: number
  n: number
  k: number
  form: GemmForm
  /** What the product is in a training step ('qkv forward', ...), for the step's shapes. */
  role?: string
}

export interface GemmBenchRow extends GemmShape {
  oursGflops: number
  blasGflops: number | null
  ratio: number | null
  /** With `bf16`: our bf16 product (the linear layers' --precision bf16), and its speed over our fp32 one. */
  bf16Gflops?: number
  bf16Speedup?: number
}

export interface GemmBenchInfo {
  kernel: string
  /**
   * How the bf16 products run: 'amx' (AMX tiles, the default where available), 'avx512bf16' (VDPBF16PS, the default
   * without AMX where it issues at the FMA's rate, as on AMD's Zen 5), 'rounded while packed' (the fp32 kernel) or
   * 'rounded copies' (SIMCSEPP_GEMM_BF16 picks).
   */
  bf16Kernel: string
  threads: number
  systemBlas?: string
  /** OpenBLAS's kernel family ('SkylakeX', 'Cooperlake' and 'SapphireRapids' run AVX-512, 'Haswell' AVX2). */
  systemBlasCore?: string
  /** OPENBLAS_CORETYPE as this process found it; the benchmark unsets it so that OpenBLAS picks its best kernels. */
  coreTypeUnset?: string
}

/** M in `ms`, N and K in `sizes`, each in the three forms. */
export function gemmSquareShapes(ms: number[], sizes: number[]): GemmShape[] {
  const shapes: GemmShape[] = []
  for (const m of ms)
    for (const n of sizes) for (const k of sizes) for (const form of ['A·Bᵀ', 'A·B', 'Aᵀ·B'] as const) shapes.push({ m, n, k, form })
  return shapes
}

/**
 * The products of one training step of an encoder with hidden size `hidden` and MLP size `intermediate` on
 * `rows` = 3·B·T token rows: per linear layer [OC, C] (q/k/v as one [3H, H], the attention output [H, H],
 * the MLP's [I, H] and [H, I]) the forward rows·Wᵀ (rows, OC, C), the input gradient dout·W (rows, C, OC)
 * and the weight gradient doutᵀ·inp (OC, C, rows). up: the MLP's first product's columns when not I (ModernBERT's
 * GeGLU: 2I).
 */
export function gemmStepShapes(hidden: number, intermediate: number, rows: number, up = intermediate): GemmShape[] {
  const layers: [string, number, number][] = [
    ['qkv', 3 * hidden, hidden],
    ['attn out', hidden, hidden],
    ['mlp up', up, hidden],
    ['mlp down', hidden, intermediate],
  ]
  return [
    ...layers.map(([name, oc, c]) => ({ m: rows, n: oc, k: c, form: 'A·Bᵀ' as const, role: `${name} forward` })),
    ...layers.map(([name, oc, c]) => ({ m: rows, n: c, k: oc, form: 'A·B' as const, role: `${name} input grad` })),
    ...layers.map(([name, oc, c]) => ({ m: oc, n: c, k: rows, form: 'Aᵀ·B' as const, role: `${name} weight grad` })),
  ]
}

// OpenBLAS's idle threads spin for a while after a call (~0.1 s) and would take a core from ours.
function letBlasThreadsSleep() {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 150)
}

function random(shape: number[], seed: number): Tensor {
  const a = new Float32Array(shape[0] * shape[1])
  let s = seed >>> 0
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = s / 4294967296 - 0.5
  }
  return Tensor.from(a, shape)
}

/** The GEMMs' description, loading the system BLAS with OPENBLAS_CORETYPE unset (it is read when OpenBLAS loads). */
export function gemmBenchInfo(): GemmBenchInfo {
  const coreType = process.env.OPENBLAS_CORETYPE
  delete process.env.OPENBLAS_CORETYPE
  try {
    const info: GemmBenchInfo = addon.gemmInfo()
    if (coreType !== undefined) info.coreTypeUnset = coreType
    return info
  } finally {
    if (coreType !== undefined) process.env.OPENBLAS_CORETYPE = coreType
  }
}

export function benchGemm(options: {
  shapes: GemmShape[]
  seconds: number
  bf16?: boolean
  /** Also time the system BLAS where one loads (default true). */
  blas?: boolean
  log: (s: string) => void
}): {
  rows: GemmBenchRow[]
  info: GemmBenchInfo
} {
  const info = gemmBenchInfo()
  const rows: GemmBenchRow[] = []
  for (const shape of options.shapes) {
    const { m, n, k, form } = shape
    const ta = form === 'Aᵀ·B',
      tb = form === 'A·Bᵀ'
    const a = random(ta ? [k, m] : [m, k], 1),
      b = random(tb ? [n, k] : [k, n], 2),
      c = Tensor.zeros([m, n])
    // Sides: 0 ours, 1 the system BLAS, 2 ours in bf16.
    const call = (side: number) =>
      addon.gemm(nativeOf(c, 'c'), nativeOf(a, 'a'), nativeOf(b, 'b'), ta, tb, 1, 0, side === 1, side === 2 ? 'bf16' : 'fp32')
    // Ours and the BLAS alternate, so that load from other processes hits both alike. Each timed call follows
    // untimed ones of the same side (warm): after the pause that lets OpenBLAS's threads sleep, this (virtual)
    // machine runs the first call up to several times slower (the cores wake from idle), and timing the side
    // that comes first after the pause cold would hand the other one that difference (measured: our GEMM at
    // 20-35 GFLOP/s per core cold against 120-140 warm at mini's shapes). Who goes first alternates too.
    // Untimed calls for at least 50 ms: after the pause, this machine needs 10-30 ms of work to run at full
    // speed again, more than one call of a short product (mini's 256-wide ones take 2-3 ms). Measured at
    // 6144 x 256 x 256, ours after the pause, median GFLOP/s: 147 with 10 ms of untimed calls, 303-310 with
    // 30-60 ms, 300-312 in a loop without pauses.
    const warm = (side: number) => {
      const t0 = performance.now()
      do call(side)
      while (performance.now() - t0 < 50)
    }
    const times: number[][] = [[], [], []]
    const blasToo = Boolean(info.systemBlas) && options.blas !== false
    const sides = [0, ...(blasToo ? [1] : []), ...(options.bf16 ? [2] : [])]
    for (const side of sides) call(side)
    letBlasThreadsSleep()
    const start = performance.now()
    for (let round = 0; times[0].length < 3 || (performance.now() - start < options.seconds * 1000 && times[0].length < 25); round++)
      for (const side of round % 2 ? [...sides].reverse() : sides) {
        warm(side)
        const t0 = performance.now()
        call(side)
        times[side].push(performance.now() - t0)
        if (side === 1) letBlasThreadsSleep()
      }
    const gflops = (ts: number[]) => (2 * m * n * k) / (median(ts) / 1000) / 1e9
    const ours = gflops(times[0])
    const blas = blasToo ? gflops(times[1]) : null
    const bf16 = options.bf16 ? { bf16Gflops: gflops(times[2]), bf16Speedup: gflops(times[2]) / ours } : {}
    rows.push({ ...shape, oursGflops: ours, blasGflops: blas, ratio: blas ? ours / blas : null, ...bf16 })
    options.log(
      `M=${m} N=${n} K=${k} ${form}: ${ours.toFixed(1)} GFLOP/s` +
        (blas ? ` (system BLAS ${blas.toFixed(1)})` : '') +
        (bf16.bf16Gflops ? `, bf16 ${bf16.bf16Gflops.toFixed(1)}` : ''),
    )
    for (const t of [a, b, c]) t.dispose()
  }
  return { rows, info }
}
