// The SimCSE++ losses (docs/method.md §1-4): each returns the loss and the gradients w.r.t. its inputs,
// computed by the fused native kernels on the inputs' device. Gradients go into fresh tensors, or into
// the caller's (`grads`), which is how the training loop uses them without allocating per step.
// Temperatures and scales are bounded (lib/options.ts) and inputs beyond ±1e15 are refused with NaN
// and Inf (native/ops/losses.h), so a loss that returns is finite, as are its gradients.
import { addon, type NativeTensor } from './native.js'
import { checkOptions } from './options.js'
import { Tensor, describe, nativeOf } from './tensor.js'

export interface LossGrads {
  z1: Tensor
  z2: Tensor
  z0?: Tensor
  z3?: Tensor
}

export interface LossOutput {
  loss: number
  grads: LossGrads
  /** The unweighted terms of a composite loss (simcsePlusPlus: offDropout and, unless λ = 0, dcl). */
  parts?: Record<string, number>
}

/** Preallocated gradient outputs: tensors shaped like their inputs on z1's device, overwritten (and returned). */
export interface GradsOption {
  grads?: LossGrads
}

export interface SimcseOptions extends GradsOption {
  /** τ of cos(z1_i, z2_j)/τ, in [1e-6, 1e6] (TEMPERATURE_RANGE). Default 0.05. */
  temperature?: number
  /**
   * Hard negatives z3 [M, D] (supervised SimCSE): extra columns cos(z1_i, z3_j)/τ of every row, so each anchor
   * is contrasted with every hard negative of the batch. M is any count: N for one per example (triplets),
   * k·N for k per example (the n-tuple format, stacked negative column by negative column).
   */
  hardNegatives?: Tensor
  /**
   * Symmetric InfoNCE (sentence-transformers' MultipleNegativesSymmetricRankingLoss): the mean of the loss above and
   * of each positive's InfoNCE against the anchors, cos(z2_i, z1_j)/τ (the hard negatives take no part in it).
   * parts then holds both, unweighted: anchors and positives.
   */
  symmetric?: boolean
}

export interface OffDropoutOptions extends GradsOption {
  /** τ, in [1e-6, 1e6]. Default 0.05. */
  temperature?: number
  /** m, the scale of the positive logit, in [-1e6, 1e6] (MAX_SCALE). Default 1. */
  posScale?: number
}

export interface DclOptions extends GradsOption {
  /** τd of X1ᵀX2/(N·τd), in [1e-6, 1e6]. Default 5. */
  temperature?: number
}

export interface CosentOptions extends GradsOption {
  /** τ of sim(z1_i, z2_i)/τ, in [1e-6, 1e6]: sentence-transformers' CoSENTLoss scale is 1/τ (its 20 is τ 0.05). Default 0.05. */
  temperature?: number
  /**
   * The pairs' similarity: 'cosine' (default: CoSENT), or 'angle' (AnglE, Li & Li 2023; sentence-transformers'
   * AnglELoss): each vector split into real and imaginary halves, the absolute sum of the real and imaginary parts
   * of their complex quotient, normalised: |x · Ry| / (|x| |y|) with Ry = [re(y) − im(y); re(y) + im(y)].
   */
  similarity?: 'cosine' | 'angle'
}

export interface SimcsePlusPlusOptions extends OffDropoutOptions {
  /** λ, the weight of DCL, in [-1e6, 1e6]. Default 0.1. */
  dclWeight?: number
  /** τd, in [1e-6, 1e6]. Default 5. */
  dclTemperature?: number
}

type GradName = keyof LossGrads

/**
 * The gradient tensors of one call: the caller's `given` ones (checked against z1's shape and device)
 * or fresh zeros. `run` gets them; fresh ones are freed if it throws.
 */
function withGrads<T>(
  z1: Tensor,
  names: GradName[],
  given: LossGrads | undefined,
  run: (g: LossGrads, n: Record<GradName, NativeTensor>) => T,
  /** The input whose shape a gradient has when it is not z1's (hard negatives: [M, D]). */
  inputs: Partial<Record<GradName, { input: string; shape: number[] }>> = {},
): T {
  nativeOf(z1, 'z1')
  const g: Partial<LossGrads> = {}
  const n: Partial<Record<GradName, NativeTensor>> = {}
  const fresh: Tensor[] = []
  for (const name of names) {
    const { input, shape } = inputs[name] ?? { input: 'z1', shape: z1.shape }
    let t = given?.[name]
    if (t === undefined) fresh.push((t = Tensor.zeros(shape, z1.device)))
    else if (
      !(t instanceof Tensor) ||
      t.device !== z1.device ||
      t.shape.length !== shape.length ||
      t.shape.some((d, i) => d !== shape[i])
    ) {
      throw new TypeError(
        `Expected grads.${name} to be a tensor of ${input}'s shape [${shape.join(', ')}] on ${z1.device} but received ${describe(t)}`,
      )
    }
    g[name] = t
    n[name] = nativeOf(t, `grads.${name}`)
  }
  try {
    return run(g as LossGrads, n as Record<GradName, NativeTensor>)
  } catch (e) {
    for (const t of fresh) t.dispose()
    throw e
  }
}

/** Unsupervised SimCSE InfoNCE (in-batch negatives: the other rows of z2), plus optional hard negatives. */
export function simcse(z1: Tensor, z2: Tensor, options?: SimcseOptions): LossOutput {
  const o = checkOptions<SimcseOptions>('losses.simcse', options, {
    temperature: 'temperature',
    hardNegatives: 'any',
    symmetric: 'any',
    grads: 'any',
  })
  if (o.symmetric !== undefined && typeof o.symmetric !== 'boolean')
    throw new TypeError(`losses.simcse: symmetric must be a boolean (got ${JSON.stringify(o.symmetric)})`)
  const n1 = nativeOf(z1, 'z1'),
    n2 = nativeOf(z2, 'z2')
  const z3 = o.hardNegatives
  const n3 = z3 === undefined ? null : nativeOf(z3, 'hardNegatives')
  const tau = o.temperature ?? 0.05
  return withGrads(
    z1,
    z3 ? ['z1', 'z2', 'z3'] : ['z1', 'z2'],
    o.grads,
    (g, n) => {
      const grads = z3 ? { z1: g.z1, z2: g.z2, z3: g.z3 } : { z1: g.z1, z2: g.z2 }
      if (!o.symmetric) return { loss: addon.simcse(n1, n2, n3, tau, n.z1, n.z2, z3 ? n.z3 : null, 1, false), grads }
      // Half of each: the anchors' loss writes the gradients, the positives' (rows z2, columns z1) adds to them.
      const anchors = addon.simcse(n1, n2, n3, tau, n.z1, n.z2, z3 ? n.z3 : null, 0.5, false)
      const positives = addon.simcse(n2, n1, null, tau, n.z2, n.z1, null, 0.5, true)
      return { loss: anchors + positives, grads, parts: { anchors: 2 * anchors, positives: 2 * positives } }
    },
    z3 ? { z3: { input: 'hardNegatives', shape: z3.shape } } : {},
  )
}

/** Off-dropout InfoNCE: positive cos(z1_i, z2_i), negatives cos(z0_i, z0_j) of the dropout-free view. */
export function offDropout(z1: Tensor, z2: Tensor, z0: Tensor, options?: OffDropoutOptions): LossOutput {
  const o = checkOptions<OffDropoutOptions>('losses.offDropout', options, { temperature: 'temperature', posScale: 'scale', grads: 'any' })
  const [n1, n2, n0] = [nativeOf(z1, 'z1'), nativeOf(z2, 'z2'), nativeOf(z0, 'z0')]
  return withGrads(z1, ['z1', 'z2', 'z0'], o.grads, (g, n) => {
    const loss = addon.offDropout(n1, n2, n0, o.temperature ?? 0.05, o.posScale ?? 1, n.z1, n.z2, n.z0, 1, false)
    return { loss, grads: { z1: g.z1, z2: g.z2, z0: g.z0 } }
  })
}

/** Dimension-wise contrastive learning over the batch-normalised D×D similarity X1ᵀX2/(N·τd). */
export function dcl(z1: Tensor, z2: Tensor, options?: DclOptions): LossOutput {
  const o = checkOptions<DclOptions>('losses.dcl', options, { temperature: 'temperature', grads: 'any' })
  const [n1, n2] = [nativeOf(z1, 'z1'), nativeOf(z2, 'z2')]
  return withGrads(z1, ['z1', 'z2'], o.grads, (g, n) => {
    const loss = addon.dcl(n1, n2, o.temperature ?? 5, n.z1, n.z2, 1, false)
    return { loss, grads: { z1: g.z1, z2: g.z2 } }
  })
}

/**
 * CoSENT over scored pairs (Su 2022; sentence-transformers' CoSENTLoss): z1_i and z2_i are pair i's sentences and
 * scores[i] its gold similarity; L = log(1 + Σ exp((cos_i − cos_j)/τ)) over every two pairs with scores[i] <
 * scores[j], so the loss falls as the cosines come into the gold order. Only the order of the scores counts (any
 * scale: STS-B's 0..5, 0..1, binary labels); ties make no term. scores is a Float32Array of N finite values.
 */
export function cosent(z1: Tensor, z2: Tensor, scores: Float32Array, options?: CosentOptions): LossOutput {
  const o = checkOptions<CosentOptions>('losses.cosent', options, { temperature: 'temperature', similarity: 'any', grads: 'any' })
  if (o.similarity !== undefined && o.similarity !== 'cosine' && o.similarity !== 'angle')
    throw new TypeError(`losses.cosent: similarity must be 'cosine' or 'angle' (got ${JSON.stringify(o.similarity)})`)
  const [n1, n2] = [nativeOf(z1, 'z1'), nativeOf(z2, 'z2')]
  return withGrads(z1, ['z1', 'z2'], o.grads, (g, n) => {
    const loss = addon.cosent(n1, n2, scores, o.temperature ?? 0.05, n.z1, n.z2, 1, false, o.similarity ?? 'cosine')
    return { loss, grads: { z1: g.z1, z2: g.z2 } }
  })
}

/** mse's options: where its gradient goes (default: a new tensor of z's shape). */
export interface MseOptions {
  grads?: { z: Tensor }
}

/**
 * Distillation (sentence-transformers' MSELoss; Reimers & Gurevych 2020): the mean squared error between the student's
 * vectors z [rows, D] and a teacher's, target (a Float32Array of n·D values, n dividing rows: row r of z is taught
 * target row r mod n, so k views of n sentences, e.g. sentences and their translations, share the teacher's vectors
 * of the sentences). L = Σ (z − t)² / (rows·D); its gradient 2 (z − t) / (rows·D).
 */
export function mse(z: Tensor, target: Float32Array, options?: MseOptions): { loss: number; grads: { z: Tensor } } {
  const o = checkOptions<MseOptions>('losses.mse', options, { grads: 'any' })
  const nz = nativeOf(z, 'z')
  let gz = o.grads?.z
  if (o.grads !== undefined && (typeof o.grads !== 'object' || o.grads === null))
    throw new TypeError(`Expected grads to be { z: Tensor } but received ${describe(o.grads)}`)
  if (gz !== undefined && (!(gz instanceof Tensor) || gz.device !== z.device || gz.shape.join() !== z.shape.join()))
    throw new TypeError(`Expected grads.z to be a tensor of z's shape [${z.shape.join(', ')}] on ${z.device} but received ${describe(gz)}`)
  const fresh = gz === undefined
  gz ??= Tensor.zeros(z.shape, z.device)
  try {
    return { loss: addon.mse(nz, target, nativeOf(gz, 'grads.z'), 1, false), grads: { z: gz } }
  } catch (e) {
    if (fresh) gz.dispose()
    throw e
  }
}

/**
 * SimCSE++ = off-dropout + λ·DCL, the one place the two are composed; the DCL gradients are
 * accumulated into the same buffers. `parts` holds both terms unweighted.
 */
export function simcsePlusPlus(z1: Tensor, z2: Tensor, z0: Tensor, options?: SimcsePlusPlusOptions): LossOutput {
  const o = checkOptions<SimcsePlusPlusOptions>('losses.simcsePlusPlus', options, {
    temperature: 'temperature',
    posScale: 'scale',
    dclWeight: 'scale',
    dclTemperature: 'temperature',
    grads: 'any',
  })
  const [n1, n2, n0] = [nativeOf(z1, 'z1'), nativeOf(z2, 'z2'), nativeOf(z0, 'z0')]
  return withGrads(z1, ['z1', 'z2', 'z0'], o.grads, (g, n) => {
    const grads = { z1: g.z1, z2: g.z2, z0: g.z0 }
    const off = addon.offDropout(n1, n2, n0, o.temperature ?? 0.05, o.posScale ?? 1, n.z1, n.z2, n.z0, 1, false)
    const weight = o.dclWeight ?? 0.1
    const parts: Record<string, number> = { offDropout: off }
    if (weight === 0) return { loss: off, grads, parts }
    const weighted = addon.dcl(n1, n2, o.dclTemperature ?? 5, n.z1, n.z2, weight, true)
    parts.dcl = weighted / weight
    return { loss: off + weighted, grads, parts }
  })
}
