// The SimCSE++ losses (METHOD.md §1-4): each returns the loss and the gradients w.r.t. its inputs,
// computed by the fused native kernels on the inputs' device.
import { addon } from './native.js'
import { checkOptions } from './options.js'
import { Tensor, nativeOf } from './tensor.js'

export interface LossOutput {
  loss: number
  grads: { z1: Tensor; z2: Tensor; z0?: Tensor; z3?: Tensor }
}

export interface SimcseOptions {
  /** τ of cos(z1_i, z2_j)/τ. Default 0.05. */
  temperature?: number
  /** Hard negatives z3 [N, D] (supervised SimCSE): extra columns cos(z1_i, z3_j)/τ. */
  hardNegatives?: Tensor
}

export interface OffDropoutOptions {
  /** τ. Default 0.05. */
  temperature?: number
  /** m, the scale of the positive logit. Default 1. */
  posScale?: number
}

export interface DclOptions {
  /** τd of X1ᵀX2/(N·τd). Default 5. */
  temperature?: number
}

export interface SimcsePlusPlusOptions extends OffDropoutOptions {
  /** λ, the weight of DCL. Default 0.1. */
  dclWeight?: number
  /** τd. Default 5. */
  dclTemperature?: number
}

// Gradient buffers shaped like `like`, on its device.
function gradLike(like: Tensor, name: string): Tensor {
  nativeOf(like, name)
  return Tensor.zeros(like.shape, like.device)
}

function guard<T>(grads: Tensor[], fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    for (const g of grads) g.dispose()
    throw e
  }
}

/** Unsupervised SimCSE InfoNCE (in-batch negatives: the other rows of z2), plus optional hard negatives. */
export function simcse(z1: Tensor, z2: Tensor, options?: SimcseOptions): LossOutput {
  const o = checkOptions<SimcseOptions>('losses.simcse', options, { temperature: 'positive', hardNegatives: 'any' })
  const n1 = nativeOf(z1, 'z1'), n2 = nativeOf(z2, 'z2')
  const z3 = o.hardNegatives
  const n3 = z3 === undefined ? null : nativeOf(z3, 'hardNegatives')
  const g1 = gradLike(z1, 'z1'), g2 = gradLike(z1, 'z1')
  const g3 = z3 ? gradLike(z1, 'z1') : undefined
  const all = [g1, g2, ...(g3 ? [g3] : [])]
  const loss = guard(all, () =>
    addon.simcse(n1, n2, n3, o.temperature ?? 0.05, nativeOf(g1, 'gz1'), nativeOf(g2, 'gz2'), g3 ? nativeOf(g3, 'gz3') : null, 1, false),
  )
  return { loss, grads: g3 ? { z1: g1, z2: g2, z3: g3 } : { z1: g1, z2: g2 } }
}

/** Off-dropout InfoNCE: positive cos(z1_i, z2_i), negatives cos(z0_i, z0_j) of the dropout-free view. */
export function offDropout(z1: Tensor, z2: Tensor, z0: Tensor, options?: OffDropoutOptions): LossOutput {
  const o = checkOptions<OffDropoutOptions>('losses.offDropout', options, { temperature: 'positive', posScale: 'number' })
  const [n1, n2, n0] = [nativeOf(z1, 'z1'), nativeOf(z2, 'z2'), nativeOf(z0, 'z0')]
  const g = [gradLike(z1, 'z1'), gradLike(z1, 'z1'), gradLike(z1, 'z1')]
  const loss = guard(g, () =>
    addon.offDropout(n1, n2, n0, o.temperature ?? 0.05, o.posScale ?? 1, nativeOf(g[0], 'gz1'), nativeOf(g[1], 'gz2'), nativeOf(g[2], 'gz0'), 1, false),
  )
  return { loss, grads: { z1: g[0], z2: g[1], z0: g[2] } }
}

/** Dimension-wise contrastive learning over the batch-normalised D×D similarity X1ᵀX2/(N·τd). */
export function dcl(z1: Tensor, z2: Tensor, options?: DclOptions): LossOutput {
  const o = checkOptions<DclOptions>('losses.dcl', options, { temperature: 'positive' })
  const [n1, n2] = [nativeOf(z1, 'z1'), nativeOf(z2, 'z2')]
  const g = [gradLike(z1, 'z1'), gradLike(z1, 'z1')]
  const loss = guard(g, () => addon.dcl(n1, n2, o.temperature ?? 5, nativeOf(g[0], 'gz1'), nativeOf(g[1], 'gz2'), 1, false))
  return { loss, grads: { z1: g[0], z2: g[1] } }
}

/** SimCSE++ = off-dropout + λ·DCL; the DCL gradients are accumulated into the same buffers. */
export function simcsePlusPlus(z1: Tensor, z2: Tensor, z0: Tensor, options?: SimcsePlusPlusOptions): LossOutput {
  const o = checkOptions<SimcsePlusPlusOptions>('losses.simcsePlusPlus', options, {
    temperature: 'positive',
    posScale: 'number',
    dclWeight: 'number',
    dclTemperature: 'positive',
  })
  const [n1, n2, n0] = [nativeOf(z1, 'z1'), nativeOf(z2, 'z2'), nativeOf(z0, 'z0')]
  const g = [gradLike(z1, 'z1'), gradLike(z1, 'z1'), gradLike(z1, 'z1')]
  const [g1, g2, g0] = g.map((t, i) => nativeOf(t, ['gz1', 'gz2', 'gz0'][i]))
  const loss = guard(g, () => {
    const off = addon.offDropout(n1, n2, n0, o.temperature ?? 0.05, o.posScale ?? 1, g1, g2, g0, 1, false)
    const weight = o.dclWeight ?? 0.1
    if (weight === 0) return off
    return off + addon.dcl(n1, n2, o.dclTemperature ?? 5, g1, g2, weight, true)
  })
  return { loss, grads: { z1: g[0], z2: g[1], z0: g[2] } }
}
