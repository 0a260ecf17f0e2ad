// Where a training step's time goes: while a profile is open, every op of the addon (lib/ops.ts, the
// losses) is timed and charged to a category; what the step spends outside them (tokenising, stacking
// the views, JavaScript, copies between tensors) is the framework's share. On the CPU the ops run to
// completion before they return, so the times are the ops'. On CUDA they only launch: a GPU profile (new
// OpProfile(true)) records a CUDA event before and after each op on the op stream, and charges each category the
// device's time between its pairs; the GPU time outside every op (the device idle while the host prepares the
// next launch, and the batch's copies) is the framework's share. Next to the wall-clock time, each category
// gets the CPU time the process spent in it (all threads): on a machine shared with other processes the wall
// clock also counts the time they take, the CPU time only this process's work. A GPU profile also opens a kernel
// profile (kernels/kernel_profile.cuh: events around every kernel, cuBLASLt product, copy and fill), whose launches
// kernelsPerStep charges to the category of the op that made them: where inside an op the device time goes.
import { addon, type KernelTime, type NativeTensor } from '../native.js'

/** One category's share of a step. */
export interface OpTime {
  category: string
  calls: number
  /** Per step. */
  milliseconds: number
  /** CPU time per step, summed over the process's threads (user + system). */
  cpuMilliseconds: number
  /** A GPU profile's device time per step: from the event before the category's ops to the one after. */
  gpuMilliseconds?: number
}

/** One kernel's share of a step on CUDA: its launches by the ops of one category (kernel_profile.cuh). */
export interface KernelShare {
  category: string
  /** The launch's label: a kernel's, "cuBLASLt <operands>, M x N x K: ..." for a product, or a copy or fill. */
  kernel: string
  /** Per step. */
  launches: number
  /** Device time per step, from the events before and after each launch. */
  gpuMilliseconds: number
  /** A product's rate (2 M N K per launch over its device time), else null. */
  tflops: number | null
  /** Per step, where the device counts them (the emulator): device-memory megabytes (1e6) read and written. */
  readMegabytes?: number
  writtenMegabytes?: number
}

/**
 * The launches of a kernel profile per step over `steps` steps, charged to the category of the op whose marker pair
 * encloses them (`ops`: in launch order, not nested; a launch between ops is the framework's) and grouped by label; in
 * OP_CATEGORIES order, the longest first within each.
 */
export function kernelShares(
  ops: { category: string; before: number; after: number }[],
  launches: KernelTime[],
  steps: number,
): KernelShare[] {
  const framework = OP_CATEGORIES[OP_CATEGORIES.length - 1]
  type Sum = { category: string; kernel: string; launches: number; ms: number; flops: number; read?: number; written?: number }
  const byKey = new Map<string, Sum>()
  let op = 0
  for (const k of launches) {
    // k.mark markers were recorded before the launch: an op's own launches have before < k.mark <= after.
    while (op < ops.length && ops[op].after < k.mark) op++
    const category = op < ops.length && ops[op].before < k.mark ? ops[op].category : framework
    const key = `${category}\u0000${k.name}`
    const t = byKey.get(key) ?? { category, kernel: k.name, launches: 0, ms: 0, flops: 0 }
    t.launches += 1
    t.ms += k.ms
    t.flops += k.flops
    if (k.readBytes !== undefined) t.read = (t.read ?? 0) + k.readBytes
    if (k.writtenBytes !== undefined) t.written = (t.written ?? 0) + k.writtenBytes
    byKey.set(key, t)
  }
  const order = (c: string) => {
    const i = (OP_CATEGORIES as readonly string[]).indexOf(c)
    return i < 0 ? OP_CATEGORIES.length : i
  }
  return [...byKey.values()]
    .sort((a, b) => order(a.category) - order(b.category) || b.ms - a.ms)
    .map((t) => ({
      category: t.category,
      kernel: t.kernel,
      launches: t.launches / steps,
      gpuMilliseconds: t.ms / steps,
      tflops: t.flops > 0 && t.ms > 0 ? t.flops / t.ms / 1e9 : null,
      ...(t.read === undefined ? {} : { readMegabytes: t.read / steps / 1e6 }),
      ...(t.written === undefined ? {} : { writtenMegabytes: t.written / steps / 1e6 }),
    }))
}

/** The process's CPU time so far (all threads, user + system), in milliseconds. */
export function processCpuMs(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/** The categories in the order tables and plots show them (forward ops, their backward, the rest). */
export const OP_CATEGORIES = [
  'embeddings',
  'QKV projection',
  'other projections',
  'MLP up projection + GELU',
  'attention',
  'GELU',
  'LayerNorm, dropout, residual',
  'pooling, MLP head',
  'loss',
  'embeddings (backward)',
  'QKV projection (backward)',
  'other projections (backward)',
  'MLP down projection + GELU (backward)',
  'attention (backward)',
  'GELU (backward)',
  'LayerNorm, dropout, residual (backward)',
  'LayerNorm outputs recomputed (backward)',
  'pooling, MLP head (backward)',
  'grad norm, clipping',
  'AdamW',
  'framework (tokenising, JS, copies)',
] as const

// The fused q/k/v product is the one linear whose weight is [3C, C].
const projection = (w: unknown, backward: boolean) => {
  const [oc, c] = (w as NativeTensor | undefined)?.shape ?? [0, 0]
  return `${oc === 3 * c ? 'QKV projection' : 'other projections'}${backward ? ' (backward)' : ''}`
}

/** The category of an addon function call (null: not an op, e.g. a tensor's own methods). */
function categoryOf(name: string, args: unknown[]): string | null {
  switch (name) {
    case 'embeddingForward':
      return 'embeddings'
    case 'embeddingBackward':
      return 'embeddings (backward)'
    case 'linearForward':
      return args[5] ? 'MLP up projection + GELU' : projection(args[2], false)
    case 'linearBackward':
      return args[8] ? 'MLP down projection + GELU (backward)' : projection(args[5], true)
    case 'attentionForward':
      return 'attention'
    case 'attentionBackward':
      return 'attention (backward)'
    case 'geluForward':
      return 'GELU'
    case 'geluBackward':
      return 'GELU (backward)'
    case 'layerNormForward':
    case 'residualLayerNormForward':
    case 'dropout':
    case 'add':
      return 'LayerNorm, dropout, residual'
    case 'layerNormApply': // outputs recomputed by a pass of their own (BertModel's weight gradients recompute theirs)
      return 'LayerNorm outputs recomputed (backward)'
    case 'layerNormBackward':
    case 'layerNormDropoutBackward':
    case 'addInplace':
      return 'LayerNorm, dropout, residual (backward)'
    case 'poolClsForward':
    case 'poolMeanForward':
    case 'poolMaxForward':
    case 'tanhForward':
      return 'pooling, MLP head'
    case 'poolClsBackward':
    case 'poolMeanBackward':
    case 'poolMaxBackward':
    case 'tanhBackward':
      return 'pooling, MLP head (backward)'
    case 'simcse':
    case 'offDropout':
    case 'dcl':
      return 'loss'
    case 'gradSumSquares':
    case 'scaleInplace':
    case 'clipGradNorm':
    case 'clipGradScale':
      return 'grad norm, clipping'
    case 'adamwStep':
      return 'AdamW'
    default:
      return null
  }
}

/** An open profile: the addon's op functions are wrapped until stop(). */
export class OpProfile {
  private readonly totals = new Map<string, { calls: number; ms: number; cpuMs: number }>()
  private readonly saved: [string, unknown][] = []
  /** GPU profile: each op's pair of markers, and the profile's first and last marker. */
  private readonly marks: { category: string; before: number; after: number }[] = []
  private readonly span: [number, number] = [-1, -1]

  /** @param gpu time the ops on the device too (CUDA events; the ops must not be captured into a graph). */
  constructor(private readonly gpu = false) {
    if (gpu) {
      addon.cudaTimerReset()
      this.span[0] = addon.cudaTimerMark()
      addon.cudaKernelProfileStart()
    }
    const target = addon as unknown as Record<string, unknown>
    for (const [name, fn] of Object.entries(target)) {
      if (typeof fn !== 'function' || categoryOf(name, []) === null) continue
      this.saved.push([name, fn])
      target[name] = (...args: unknown[]) => {
        const t0 = performance.now(),
          c0 = processCpuMs()
        const before = gpu ? addon.cudaTimerMark() : -1
        const category = categoryOf(name, args) ?? name
        try {
          return (fn as (...a: unknown[]) => unknown)(...args)
        } finally {
          if (gpu) this.marks.push({ category, before, after: addon.cudaTimerMark() })
          this.charge(category, performance.now() - t0, processCpuMs() - c0)
        }
      }
    }
  }

  private charge(category: string, ms: number, cpuMs: number): void {
    const t = this.totals.get(category) ?? { calls: 0, ms: 0, cpuMs: 0 }
    t.calls += 1
    t.ms += ms
    t.cpuMs += cpuMs
    this.totals.set(category, t)
  }

  /** Restores the addon's functions. */
  stop(): void {
    if (this.gpu && this.saved.length > 0) {
      this.span[1] = addon.cudaTimerMark()
      this.launches = addon.cudaKernelProfileStop()
    }
    const target = addon as unknown as Record<string, unknown>
    for (const [name, fn] of this.saved) target[name] = fn
    this.saved.length = 0
  }

  /**
   * The categories per step over `steps` steps that took `stepMs` milliseconds and `stepCpuMs` of CPU time in
   * all, in OP_CATEGORIES order; the framework's share is the rest of the steps' time.
   */
  perStep(steps: number, stepMs: number, stepCpuMs: number): OpTime[] {
    let ops = 0,
      opsCpu = 0
    for (const t of this.totals.values()) {
      ops += t.ms
      opsCpu += t.cpuMs
    }
    const gpu = this.gpuTimes()
    const rows: OpTime[] = []
    for (const category of OP_CATEGORIES) {
      const framework = category.startsWith('framework')
      const t = framework ? { calls: 0, ms: Math.max(0, stepMs - ops), cpuMs: Math.max(0, stepCpuMs - opsCpu) } : this.totals.get(category)
      if (!t) continue
      const row: OpTime = { category, calls: t.calls / steps, milliseconds: t.ms / steps, cpuMilliseconds: t.cpuMs / steps }
      if (gpu) row.gpuMilliseconds = (framework ? Math.max(0, gpu.total - gpu.ops) : (gpu.per.get(category) ?? 0)) / steps
      rows.push(row)
    }
    return rows
  }

  private launches: KernelTime[] = []

  /** A stopped GPU profile's launches per step over `steps` steps (kernelShares). */
  kernelsPerStep(steps: number): KernelShare[] {
    return kernelShares(this.marks, this.launches, steps)
  }

  /** A stopped GPU profile's device time: per category, in all ops, and from its first marker to its last. */
  gpuMs(): number | null {
    const g = this.gpuTimes()
    return g ? g.total : null
  }

  private gpuCache: { per: Map<string, number>; ops: number; total: number } | null = null

  private gpuTimes(): { per: Map<string, number>; ops: number; total: number } | null {
    if (!this.gpu || this.span[1] < 0) return null
    if (this.gpuCache) return this.gpuCache
    const per = new Map<string, number>()
    let ops = 0
    for (const m of this.marks) {
      const ms = addon.cudaTimerElapsed(m.before, m.after)
      per.set(m.category, (per.get(m.category) ?? 0) + ms)
      ops += ms
    }
    this.gpuCache = { per, ops, total: addon.cudaTimerElapsed(this.span[0], this.span[1]) }
    return this.gpuCache
  }
}
