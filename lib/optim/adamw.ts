// AdamW exactly as torch.optim.AdamW (decoupled weight decay), over a model's flat parameter buffer:
// one native pass for the weight-decayed range and one for the biases and LayerNorm parameters,
// which are never decayed. Moments share the parameters' layout, so checkpointing them is one copy.
import { Tensor, describe } from '../tensor.js'
import * as ops from '../ops.js'
import { checkOptions } from '../options.js'

export interface AdamWOptions {
  lr?: number
  beta1?: number
  beta2?: number
  eps?: number
  weightDecay?: number
}

export interface AdamWState {
  step: number
  m: Float32Array
  v: Float32Array
}

export class AdamW {
  readonly m: Tensor
  readonly v: Tensor
  step = 0
  readonly lr: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly weightDecay: number

  /**
   * @param params flat parameters; @param grads same layout; elements [0, decayEnd) get weight decay.
   */
  constructor(
    private readonly params: Tensor,
    private readonly grads: Tensor,
    private readonly decayEnd: number,
    options: AdamWOptions = {},
  ) {
    const o = checkOptions<AdamWOptions>('AdamW', options, {
      lr: 'number',
      beta1: 'number',
      beta2: 'number',
      eps: 'positive',
      weightDecay: 'number',
    })
    this.lr = o.lr ?? 1e-3
    this.beta1 = o.beta1 ?? 0.9
    this.beta2 = o.beta2 ?? 0.999
    this.eps = o.eps ?? 1e-8
    this.weightDecay = o.weightDecay ?? 0
    if (!(this.beta1 >= 0 && this.beta1 < 1) || !(this.beta2 >= 0 && this.beta2 < 1)) throw new RangeError('AdamW: betas must be in [0, 1)')
    if (params.numel !== grads.numel) throw new RangeError('AdamW: params and grads must have the same size')
    this.m = Tensor.zeros([params.numel], params.device)
    this.v = Tensor.zeros([params.numel], params.device)
  }

  /**
   * One update with learning rate `lr` (default: the constructor's). `gradScale` (one element on the
   * params' device, as clipGradScale fills it) multiplies the gradients first: clipping folded into the step.
   */
  stepWith(lr = this.lr, gradScale: Tensor | null = null): void {
    this.step++
    this.update(lr, this.step, gradScale)
  }

  /**
   * The update of (1-based) step `step` without counting it: a CUDA step graph captures it once and
   * replays it with each step's lr and step (the caller keeps `step` current).
   */
  update(lr: number, step: number, gradScale: Tensor | null = null): void {
    const n = this.params.numel,
      k = this.decayEnd
    const range = (t: Tensor, a: number, b: number) => t.view(a, [b - a])
    const groups: [number, number, number][] = [
      [0, k, this.weightDecay],
      [k, n, 0],
    ]
    for (const [a, b, wd] of groups) {
      if (b <= a) continue
      ops.adamwStep(
        range(this.params, a, b),
        range(this.grads, a, b),
        range(this.m, a, b),
        range(this.v, a, b),
        lr,
        this.beta1,
        this.beta2,
        this.eps,
        wd,
        step,
        gradScale,
      )
    }
  }

  state(): AdamWState {
    return { step: this.step, m: this.m.toFloat32Array(), v: this.v.toFloat32Array() }
  }

  loadState(s: AdamWState): void {
    if (s.m.length !== this.m.numel || s.v.length !== this.v.numel)
      throw new RangeError('AdamW.loadState: moment sizes do not match the parameters')
    this.m.copyFrom(s.m)
    this.v.copyFrom(s.v)
    this.step = s.step
  }

  dispose(): void {
    this.m.dispose()
    this.v.dispose()
  }
}

/**
 * Scales grads so that their global L2 norm is at most maxNorm; returns the norm before clipping.
 * A NaN or infinite norm (the gradients hold NaN or Infinity) is an Error: scaling cannot repair it,
 * and an optimizer step would write NaN into every parameter.
 */
export function clipGradNorm(grads: Tensor, maxNorm: number): number {
  if (typeof maxNorm !== 'number' || !Number.isFinite(maxNorm) || maxNorm <= 0) {
    throw new TypeError(`clipGradNorm: expected maxNorm to be a number > 0 but received ${describe(maxNorm)}`)
  }
  // torch.nn.utils.clip_grad_norm_: coefficient maxNorm / (norm + 1e-6), applied only when < 1 (and the
  // norm is finite: the op leaves non-finite gradients as they are).
  return checkedNorm(ops.clipGradNorm(grads, maxNorm))
}

/**
 * clipGradNorm folded into the optimizer step: the gradient norm (an Error when NaN or infinite, as
 * clipGradNorm), and into `scale` the factor clipping would apply, for AdamW.stepWith(lr, scale). The
 * gradients are not written: one pass over them instead of two, the same updates bit for bit.
 */
export function clipGradScale(grads: Tensor, maxNorm: number, scale: Tensor): number {
  if (typeof maxNorm !== 'number' || !Number.isFinite(maxNorm) || maxNorm <= 0) {
    throw new TypeError(`clipGradScale: expected maxNorm to be a number > 0 but received ${describe(maxNorm)}`)
  }
  return checkedNorm(ops.clipGradScale(grads, maxNorm, scale))
}

/** The gradient norm of a sum of squares; a NaN or infinite one is an Error (see clipGradNorm). */
export function checkedNorm(sumSquares: number): number {
  const norm = Math.sqrt(sumSquares)
  if (!Number.isFinite(norm)) {
    throw new RangeError(
      `clipGradNorm: the gradient norm is ${norm} (the gradients hold NaN or Infinity); lower the learning rate or resume from an earlier checkpoint`,
    )
  }
  return norm
}

/** Linear warm-up from 0 over `warmup` steps, then linear decay to 0 at `total` (transformers' schedule). */
export function linearSchedule(baseLr: number, step: number, total: number, warmup = 0): number {
  return scheduledLr('linear', baseLr, step, total, warmup)
}

/** The learning-rate schedules after the warm-up, as transformers names them. */
export type LrSchedule = 'linear' | 'cosine' | 'constant'
export const LR_SCHEDULES: LrSchedule[] = ['linear', 'cosine', 'constant']

/**
 * The learning rate of step `step` (0-based) of `total`: a linear warm-up from 0 over `warmup` steps, then
 * transformers' get_linear_schedule_with_warmup (linear decay to 0 at `total`), get_cosine_schedule_with_warmup
 * (half a cosine period, to 0 at `total`) or get_constant_schedule_with_warmup.
 */
export function scheduledLr(schedule: LrSchedule, baseLr: number, step: number, total: number, warmup = 0): number {
  if (warmup > 0 && step < warmup) return (baseLr * step) / warmup
  if (schedule === 'constant' || total <= warmup) return baseLr
  if (schedule === 'cosine') return baseLr * Math.max(0, 0.5 * (1 + Math.cos((Math.PI * (step - warmup)) / (total - warmup))))
  return baseLr * Math.max(0, (total - step) / (total - warmup))
}
