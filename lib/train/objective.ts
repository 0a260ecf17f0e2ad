// The training objectives over the encoder's stacked views z = [z1; z2; z0] ([V·N, H]): how many views
// each needs, and the loss with its gradient written into a preallocated buffer. The losses themselves,
// SimCSE++'s composition included, are the public ones of lib/losses.ts.
import * as losses from '../losses.js'
import type { Tensor } from '../tensor.js'

export type Objective = 'simcse' | 'off-dropout' | 'dcl' | 'simcse++'
export const OBJECTIVES: Objective[] = ['simcse', 'off-dropout', 'dcl', 'simcse++']

export interface LossSettings {
  objective: Objective
  temperature: number
  posScale: number
  dclWeight: number
  dclTemperature: number
}

/** Views per sentence: two dropout views, plus the dropout-free z0 for the off-dropout objectives. */
export function viewCount(objective: Objective): 2 | 3 {
  return objective === 'off-dropout' || objective === 'simcse++' ? 3 : 2
}

/** Per-row dropout switch for V views of N sentences: dropout on z1 and z2, off on z0. */
export function keepRowsFor(objective: Objective, n: number): Uint8Array {
  const keep = new Uint8Array(viewCount(objective) * n)
  keep.fill(1, 0, 2 * n)
  return keep
}

/**
 * Computes the loss of `z` ([V·N, H]) through the public losses API and writes dL/dz into `grad`
 * (same shape). Returns the total and its parts (unweighted), for logging.
 */
export function objectiveLoss(s: LossSettings, z: Tensor, grad: Tensor, n: number): { loss: number; parts: Record<string, number> } {
  const h = z.shape[1]
  const view = (t: Tensor, k: number) => t.view(k * n * h, [n, h])
  const [z1, z2] = [view(z, 0), view(z, 1)]
  const grads = { z1: view(grad, 0), z2: view(grad, 1) }
  switch (s.objective) {
    case 'simcse': {
      const { loss } = losses.simcse(z1, z2, { temperature: s.temperature, grads })
      return { loss, parts: { simcse: loss } }
    }
    case 'dcl': {
      const { loss } = losses.dcl(z1, z2, { temperature: s.dclTemperature, grads })
      return { loss, parts: { dcl: loss } }
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
