// A device-time estimate of a CUDA training step at a batch size no emulator run reaches, from the bytes the
// emulator counts (emulator/traffic.cpp): `bench step --profile --device cuda` on the emulated addon at two small
// batch sizes gives, per kernel, the device memory it read and wrote and, per product, its flops. Each is a + b B
// (weights and their gradients once per step, activations per sentence), so two batch sizes fit it and it is
// extrapolated to the target. Time per launch: its bytes over the memory bandwidth, a product's flops over the
// products' rate (whichever is longer), plus a fixed cost per launch. Not a measurement: a floor for the
// bandwidth-bound kernels (each 32-byte sector counted once per launch, as if the L2 held the launch's footprint;
// a kernel that re-reads more than the L2 holds moves more; but two launches sharing rows through the L2 on purpose
// are both charged), and the products at the rate given. What it is for: which kernels' bytes hold a step back,
// and how much a change of the kernels moves, between GPU sessions.
import type { KernelShare } from './op-profile.js'

/** One profiled step of the emulated device (a `bench step --profile --json` row). */
export interface TrafficRun {
  batchSize: number
  /** The model's flops per step at this batch size (the MFU's numerator). */
  flopsPerStep: number
  /** With readMegabytes and writtenMegabytes: counted by the emulator. */
  kernels: KernelShare[]
}

export interface TrafficModelOptions {
  /** The batch size to estimate. */
  batchSize: number
  /** Memory bandwidth the bandwidth-bound kernels reach, GB/s (1e9 bytes). */
  bandwidthGBs: number
  /** The products' rate, TFLOP/s. */
  productTflops: number
  /** The device's dense peak, TFLOP/s (the MFU's denominator). */
  peakTflops: number
  /** Fixed cost per launch, microseconds. */
  launchMicroseconds: number
}

/** One op category's share of the estimated step. */
export interface TrafficCategory {
  category: string
  launches: number
  /** Device memory read and written per step, GB. */
  gigabytes: number
  /** The products' flops per step, TFLOP. */
  productTflop: number
  /** The estimated device time per step. */
  milliseconds: number
}

/** One kernel's (or one product label's, its shape left out) share of the estimated step. */
export interface TrafficKernel extends TrafficCategory {
  /** The kernel's profile label; a product's with its shape as 'M x N x K'. */
  kernel: string
}

export interface TrafficModel {
  batchSize: number
  categories: TrafficCategory[]
  /** Per kernel, most bytes first. */
  kernels: TrafficKernel[]
  milliseconds: number
  gigabytes: number
  /** The model's flops per step, TFLOP. */
  modelTflop: number
  /** modelTflop over the estimated time, as a fraction of the peak. */
  mfu: number
}

// A product's label names its shape, which changes with the batch size: grouped without it. A group's time is taken
// from its summed bytes and flops, which is each product's own only when all are bound the same way (BERT-base's are
// all bound by their flops at B = 512).
const shapeless = (kernel: string) => kernel.replace(/\d+ x \d+ x \d+/, 'M x N x K')

/** The estimate at o.batchSize from two runs at different batch sizes (see the header). */
export function trafficModel(runs: TrafficRun[], o: TrafficModelOptions): TrafficModel {
  if (runs.length !== 2 || runs[0].batchSize === runs[1].batchSize)
    throw new Error('trafficModel: needs two profiled runs at different batch sizes')
  for (const r of runs)
    if (!r.kernels.length || r.kernels.some((k) => k.readMegabytes === undefined || k.writtenMegabytes === undefined))
      throw new Error(`trafficModel: the run at B = ${r.batchSize} has no byte counts (profile on the emulated device)`)
  const [b1, b2] = [runs[0].batchSize, runs[1].batchSize]
  // v(B) = v1 + (v2 - v1)(B - b1)/(b2 - b1), not below 0 (a count that shrinks with B is noise of the small runs).
  const at = (v1: number, v2: number) => Math.max(0, v1 + ((v2 - v1) * (o.batchSize - b1)) / (b2 - b1))
  type Point = { category: string; launches: number[]; bytes: number[]; flops: number[] }
  const byKey = new Map<string, Point>()
  runs.forEach((r, i) => {
    for (const k of r.kernels) {
      const key = `${k.category}\u0000${shapeless(k.kernel)}`
      const p = byKey.get(key) ?? { category: k.category, launches: [0, 0], bytes: [0, 0], flops: [0, 0] }
      p.launches[i] += k.launches
      p.bytes[i] += (k.readMegabytes! + k.writtenMegabytes!) * 1e6
      p.flops[i] += (k.tflops ?? 0) * k.gpuMilliseconds * 1e9 // tflops = flops / ms / 1e9
      byKey.set(key, p)
    }
  })
  const categories = new Map<string, TrafficCategory>()
  const kernels: TrafficKernel[] = []
  for (const [key, p] of byKey) {
    const launches = Math.max(p.launches[0], p.launches[1])
    const bytes = at(p.bytes[0], p.bytes[1])
    const flops = at(p.flops[0], p.flops[1])
    const seconds = Math.max(bytes / (o.bandwidthGBs * 1e9), flops / (o.productTflops * 1e12)) + (launches * o.launchMicroseconds) / 1e6
    const share = { launches, gigabytes: bytes / 1e9, productTflop: flops / 1e12, milliseconds: seconds * 1e3 }
    kernels.push({ category: p.category, kernel: key.slice(p.category.length + 1), ...share })
    const c = categories.get(p.category) ?? { category: p.category, launches: 0, gigabytes: 0, productTflop: 0, milliseconds: 0 }
    c.launches += share.launches
    c.gigabytes += share.gigabytes
    c.productTflop += share.productTflop
    c.milliseconds += share.milliseconds
    categories.set(p.category, c)
  }
  kernels.sort((a, b) => b.gigabytes - a.gigabytes)
  const list = [...categories.values()]
  const milliseconds = list.reduce((s, c) => s + c.milliseconds, 0)
  const modelTflop = at(runs[0].flopsPerStep, runs[1].flopsPerStep) / 1e12
  return {
    batchSize: o.batchSize,
    categories: list,
    kernels,
    milliseconds,
    gigabytes: list.reduce((s, c) => s + c.gigabytes, 0),
    modelTflop,
    mfu: modelTflop / (milliseconds / 1e3) / o.peakTflops,
  }
}
