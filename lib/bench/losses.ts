// `simcsepp bench losses`: the fused off-dropout InfoNCE (forward + backward) against an unfused
// path of separate ops (normalise, N×N logit GEMM, log-sum-exp, gradient GEMMs), per device and N.
// Times are medians of repeated runs measured in this one process; the speed-up is their ratio.
import { addon } from '../native.js'
import { Tensor, type Device } from '../tensor.js'
import { nativeOf } from '../tensor.js'
import { formatBytes } from '../util/format.js'
import { median } from './median.js'

export interface LossBenchRow {
  device: Device
  n: number
  d: number
  fusedMs: number | null
  unfusedMs: number | null
  speedup: number | null
  fusedWorkspaceBytes: number | null
  unfusedWorkspaceBytes: number | null
  note?: string
}

export interface LossBenchOptions {
  sizes: number[]
  dim: number
  devices: Device[]
  /** Stop repeating a measurement after this many seconds (at least 3 runs). */
  secondsPerCase: number
  /** Sizes were given explicitly: run them even where the CPU takes minutes. */
  explicitSizes: boolean
  log: (line: string) => void
}

function randomMatrix(n: number, d: number, seed: number, device: Device): Tensor {
  const a = new Float32Array(n * d)
  let s = seed >>> 0
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = s / 2147483648 - 1
  }
  return Tensor.from(a, [n, d], device)
}

function timeIt(fn: () => void, seconds: number): number {
  fn() // warm-up: workspaces, thread pool, CUDA module load
  const times: number[] = []
  const start = performance.now()
  while (times.length < 3 || (performance.now() - start < seconds * 1000 && times.length < 20)) {
    const t0 = performance.now()
    fn()
    times.push(performance.now() - t0)
  }
  return median(times)
}

// Fused CPU cost is about 6·N²·D flops; beyond ~2e13 it runs for minutes on a small machine.
const cpuTooSlow = (n: number, d: number) => 6 * n * n * d > 2e13

export function benchLosses(o: LossBenchOptions): LossBenchRow[] {
  const rows: LossBenchRow[] = []
  for (const device of o.devices) {
    for (const n of o.sizes) {
      const d = o.dim
      const row: LossBenchRow = {
        device,
        n,
        d,
        fusedMs: null,
        unfusedMs: null,
        speedup: null,
        fusedWorkspaceBytes: null,
        unfusedWorkspaceBytes: null,
      }
      if (device === 'cpu' && cpuTooSlow(n, d) && !o.explicitSizes) {
        row.note = 'skipped on CPU (minutes per run); pass --sizes to force'
        rows.push(row)
        o.log(`${device} N=${n}: ${row.note}`)
        continue
      }
      const [z1, z2, z0] = [1, 2, 3].map((k) => randomMatrix(n, d, n * 10 + k, device))
      const grads = [0, 1, 2].map(() => Tensor.zeros([n, d], device))
      // The addon is called directly so gradient buffers are reused and allocation stays untimed.
      const [n1, n2, n0] = [z1, z2, z0].map((z, i) => nativeOf(z, `z${i}`))
      const [g1, g2, g0] = grads.map((g) => nativeOf(g, 'grad'))
      row.fusedMs = timeIt(() => void addon.offDropout(n1, n2, n0, 0.05, 1, g1, g2, g0, 1, false), o.secondsPerCase)
      row.fusedWorkspaceBytes = addon.offDropoutWorkspaceBytes(n, d, device)
      if (device === 'cpu' && n * n * 4 >= 8 * 2 ** 30) {
        row.note = 'unfused N×N logits exceed 8 GiB'
      } else {
        let bytes = 0
        try {
          row.unfusedMs = timeIt(() => {
            bytes = addon.offDropoutUnfused(n1, n2, n0, 0.05, 1, g1, g2, g0).workspaceBytes
          }, o.secondsPerCase)
          row.unfusedWorkspaceBytes = bytes
          row.speedup = row.unfusedMs / row.fusedMs
        } catch (e) {
          // The N×N logits do not fit (checked before allocating, or cudaMalloc failed): say so, keep going.
          const msg = (e as Error).message
          if (!/would not fit|cudaMalloc|out of memory/i.test(msg)) throw e
          row.unfusedMs = null
          row.note =
            device === 'cuda'
              ? `unfused N×N logits (${formatBytes(n * n * 4)}) do not fit in free device memory`
              : `unfused N×N logits (${formatBytes(n * n * 4)}) do not fit in memory`
        }
      }
      for (const t of [z1, z2, z0, ...grads]) t.dispose()
      rows.push(row)
      o.log(
        `${device} N=${n} D=${d}: fused ${row.fusedMs.toFixed(2)} ms` +
          (row.unfusedMs !== null ? `, unfused ${row.unfusedMs.toFixed(2)} ms` : row.note ? ` (${row.note})` : ''),
      )
    }
  }
  return rows
}
