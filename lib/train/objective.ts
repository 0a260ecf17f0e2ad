// The training objectives over the encoder's stacked views z = [z1; z2; z0] ([V·N, H]): how many views
// each needs, and the loss with its gradient written into a preallocated buffer. The losses themselves,
// SimCSE++'s composition included, are the public ones of lib/losses.ts.
import * as losses from '../losses.js'
import type { Tensor } from '../tensor.js'

export type Objective = 'simcse' | 'off-dropout' | 'dcl' | 'simcse++' | 'cosent' | 'angle' | 'distill'
export const OBJECTIVES: Objective[] = ['simcse', 'off-dropout', 'dcl', 'simcse++', 'cosent', 'angle', 'distill']
/** The objectives of scored pairs: CoSENT over the pairs' cosines, or over AnglE's angle similarity. */
export const SCORED_OBJECTIVES: Objective[] = ['cosent', 'angle']
/**
 * Distillation (sentence-transformers' MSELoss): the student's vectors of sentences (or of both sentences of parallel
 * pairs) taught a teacher model's vectors of the (first) sentences, by their mean squared error.
 */
export const TEACHER_OBJECTIVES: Objective[] = ['distill']
/** The objectives that train on plain sentences alone (all but those of scored pairs, and distillation's teacher). */
export const TEXT_OBJECTIVES: Objective[] = OBJECTIVES.filter((o) => !SCORED_OBJECTIVES.includes(o) && !TEACHER_OBJECTIVES.includes(o))
/** The objective of plain text when none is given: SimCSE++ (docs/method.md). */
export const DEFAULT_OBJECTIVE: Objective = 'simcse++'

export interface LossSettings {
  objective: Objective
  /** Supervised SimCSE: also each positive's InfoNCE against the anchors (losses.simcse's symmetric). */
  symmetric?: boolean
  temperature: number
  posScale: number
  dclWeight: number
  dclTemperature: number
}

/**
 * Views per sentence: two dropout views, plus the dropout-free z0 for the off-dropout objectives.
 * Supervised data (`columns`: 2 for pairs, 3 for triplets, 2 + k for k hard negatives) has one view per
 * column instead.
 */
export function viewCount(objective: Objective, columns?: number): number {
  if (columns) return columns
  if (objective === 'distill') return 1 // each sentence once, taught the teacher's vector
  return objective === 'off-dropout' || objective === 'simcse++' ? 3 : 2
}

/**
 * Per-row dropout switch for V views of N sentences: dropout on z1 and z2, off on z0. Supervised
 * columns are different sentences, all encoded with dropout as in SimCSE's supervised training.
 */
export function keepRowsFor(objective: Objective, n: number, columns?: number): Uint8Array {
  const keep = new Uint8Array(viewCount(objective, columns) * n)
  keep.fill(1, 0, objective === 'distill' ? keep.length : (columns ?? 2) * n) // the student trains with dropout
  return keep
}

/**
 * The objective of a run on data of this format: supervised pairs/triplets train with SimCSE's loss
 * (in-batch and hard negatives), or with CoSENT when asked (scored pairs); the other objectives contrast two
 * dropout views of one sentence, which pair data does not have, so they are refused. Plain text keeps the
 * given one (default SimCSE++), CoSENT excepted: it needs scores.
 */
export function objectiveForData(given: Objective | undefined, format: string): Objective | undefined {
  if (format === 'text') {
    if (given !== undefined && SCORED_OBJECTIVES.includes(given))
      throw new TypeError(`train: objective ${given} trains on scored pairs (sentence1, sentence2, score); the data holds sentences`)
    return given
  }
  if (given !== undefined && given !== 'simcse' && given !== 'distill' && !SCORED_OBJECTIVES.includes(given))
    throw new TypeError(`train: objective ${given} needs one sentence per line; ${format} pairs/triplets train with objective simcse`)
  return given ?? 'simcse'
}

/**
 * objectiveLoss's { loss, parts } from the values its loss ops returned, in call order (each already
 * times its weight): what a CUDA step graph reads back after a replay, where the ops ran on the device.
 */
export function lossFromResults(s: LossSettings, values: number[]): { loss: number; parts: Record<string, number> } {
  const [first, weighted] = values
  switch (s.objective) {
    case 'simcse':
      // symmetric: losses.simcse's two calls, each times 1/2.
      if (s.symmetric) return { loss: first + weighted, parts: { anchors: 2 * first, positives: 2 * weighted } }
      return { loss: first, parts: { simcse: first } }
    case 'dcl':
      return { loss: first, parts: { dcl: first } }
    case 'cosent':
    case 'angle':
    case 'distill':
      return { loss: first, parts: { [s.objective]: first } }
    case 'off-dropout':
      return { loss: first, parts: { offDropout: first } }
    case 'simcse++':
      // losses.simcsePlusPlus: offDropout, then dcl times dclWeight unless that is 0.
      if (values.length === 1) return { loss: first, parts: { offDropout: first } }
      return { loss: first + weighted, parts: { offDropout: first, dcl: weighted / s.dclWeight } }
  }
}

/** What a batch brings besides its sentences: gold scores (cosent, angle), a teacher's vectors (distill). */
export interface BatchTargets {
  /** The pairs' gold scores, one per pair. */
  scores?: Float32Array
  /** The teacher's vectors of the batch's (first) sentences, [N, H] row-major. */
  targets?: Float32Array
}

/**
 * Computes the loss of `z` ([V·N, H]) through the public losses API and writes dL/dz into `grad`
 * (same shape). Returns the total and its parts (unweighted), for logging. `batch`: its gold scores or teacher
 * vectors (a CUDA step graph binds these arrays).
 */
export function objectiveLoss(
  s: LossSettings,
  z: Tensor,
  grad: Tensor,
  n: number,
  { scores, targets }: BatchTargets = {},
): { loss: number; parts: Record<string, number> } {
  if (s.objective === 'distill') {
    // Every row of z (each view of each sentence) taught its sentence's teacher vector.
    if (!targets) throw new Error("objective distill: a batch without the teacher's vectors")
    const { loss } = losses.mse(z, targets, { grads: { z: grad } })
    return { loss, parts: { distill: loss } }
  }
  const h = z.shape[1]
  const view = (t: Tensor, k: number) => t.view(k * n * h, [n, h])
  const [z1, z2] = [view(z, 0), view(z, 1)]
  const grads = { z1: view(grad, 0), z2: view(grad, 1) }
  switch (s.objective) {
    case 'simcse': {
      // Supervised triplets (n-tuples) stack the hard negatives after them: one block of n rows per
      // negative column, all of them z3's rows, columns of every anchor.
      const m = z.shape[0] - 2 * n
      const symmetric = s.symmetric === true
      const r =
        m > 0
          ? losses.simcse(z1, z2, {
              temperature: s.temperature,
              symmetric,
              hardNegatives: z.view(2 * n * h, [m, h]),
              grads: { ...grads, z3: grad.view(2 * n * h, [m, h]) },
            })
          : losses.simcse(z1, z2, { temperature: s.temperature, symmetric, grads })
      return { loss: r.loss, parts: r.parts ?? { simcse: r.loss } }
    }
    case 'dcl': {
      const { loss } = losses.dcl(z1, z2, { temperature: s.dclTemperature, grads })
      return { loss, parts: { dcl: loss } }
    }
    case 'cosent':
    case 'angle': {
      if (!scores) throw new Error(`objective ${s.objective}: a batch without scores`)
      const similarity = s.objective === 'angle' ? 'angle' : 'cosine'
      const { loss } = losses.cosent(z1, z2, scores, { temperature: s.temperature, similarity, grads })
      return { loss, parts: { [s.objective]: loss } }
    }
    case 'off-dropout': {
      const { loss } = losses.offDropout(z1, z2, view(z, 2), {
        temperature: s.temperature,
        posScale: s.posScale,
        grads: { ...grads, z0: view(grad, 2) },
      })
      return { loss, parts: { offDropout: loss } }
    }
    case 'simcse++': {
      const r = losses.simcsePlusPlus(z1, z2, view(z, 2), {
        temperature: s.temperature,
        posScale: s.posScale,
        dclWeight: s.dclWeight,
        dclTemperature: s.dclTemperature,
        grads: { ...grads, z0: view(grad, 2) },
      })
      return { loss: r.loss, parts: r.parts! }
    }
  }
}
