// `simcsepp bench gemm`: GFLOP/s of the CPU SGEMM at BERT's shapes (M = 2048 and 6144 rows, N and K
// in {768, 3072}), in the three forms training uses (forward A·Bᵀ, input-gradient A·B, weight-gradient
// Aᵀ·B), next to the system BLAS (OpenBLAS, when installed) in the same process.
import { addon } from '../native.js'
import { Tensor, nativeOf } from '../tensor.js'
import { median } from './median.js'

export interface GemmBenchRow {
  m: number
  n: number
  k: number
  form: 'A·Bᵀ' | 'A·B' | 'Aᵀ·B'
  oursGflops: number
  blasGflops: number | null
  ratio: number | null
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

export function benchGemm(options: { ms: number[]; sizes: number[]; seconds: number; log: (s: string) => void }): {
  rows: GemmBenchRow[]
  info: ReturnType<typeof addon.gemmInfo>
} {
  const info = addon.gemmInfo()
  const rows: GemmBenchRow[] = []
  for (const m of options.ms)
    for (const n of options.sizes)
      for (const k of options.sizes)
        for (const form of ['A·Bᵀ', 'A·B', 'Aᵀ·B'] as const) {
          const ta = form === 'Aᵀ·B',
            tb = form === 'A·Bᵀ'
          const a = random(ta ? [k, m] : [m, k], 1),
            b = random(tb ? [n, k] : [k, n], 2),
            c = Tensor.zeros([m, n])
          const run = (system: boolean) => {
            const call = () => addon.gemm(nativeOf(c, 'c'), nativeOf(a, 'a'), nativeOf(b, 'b'), ta, tb, 1, 0, system)
            call()
            const times: number[] = []
            const start = performance.now()
            while (times.length < 3 || (performance.now() - start < options.seconds * 1000 && times.length < 15)) {
              const t0 = performance.now()
              call()
              times.push(performance.now() - t0)
            }
            return (2 * m * n * k) / (median(times) / 1000) / 1e9
          }
          const ours = run(false)
          const blas = info.systemBlas ? run(true) : null
          rows.push({ m, n, k, form, oursGflops: ours, blasGflops: blas, ratio: blas ? ours / blas : null })
          options.log(`M=${m} N=${n} K=${k} ${form}: ${ours.toFixed(1)} GFLOP/s` + (blas ? ` (system BLAS ${blas.toFixed(1)})` : ''))
          for (const t of [a, b, c]) t.dispose()
        }
  return { rows, info }
}
