// The training objectives over the encoder's stacked views z = [z1; z2; z0] ([V·N, H]):
// how many views each needs, and the loss with its gradient written into a preallocated buffer.
import { addon } from '../native.js'
import { Tensor, nativeOf } from '../tensor.js'

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
 * Computes the loss of `z` ([V·N, H]) and writes dL/dz into `grad` (same shape).
 * Returns the total and its parts (unweighted), for logging.
 */
export function objectiveLoss(s: LossSettings, z: Tensor, grad: Tensor, n: number): { loss: number; parts: Record<string, number> } {
  const h = z.shape[1]
  const view = (t: Tensor, k: number) => nativeOf(t.view(k * n * h, [n, h]), 'z')
  const [z1, z2] = [view(z, 0), view(z, 1)]
  const [g1, g2] = [view(grad, 0), view(grad, 1)]
  switch (s.objective) {
    case 'simcse': {
      const l = addon.simcse(z1, z2, null, s.temperature, g1, g2, null, 1, false)
      return { loss: l, parts: { simcse: l } }
    }
    case 'dcl': {
      const l = addon.dcl(z1, z2, s.dclTemperature, g1, g2, 1, false)
      return { loss: l, parts: { dcl: l } }
    }
    case 'off-dropout':
    case 'simcse++': {
      const off = addon.offDropout(z1, z2, view(z, 2), s.temperature, s.posScale, g1, g2, view(grad, 2), 1, false)
      if (s.objective === 'off-dropout' || s.dclWeight === 0) return { loss: off, parts: { offDropout: off } }
      const dcl = addon.dcl(z1, z2, s.dclTemperature, g1, g2, s.dclWeight, true) / s.dclWeight
      return { loss: off + s.dclWeight * dcl, parts: { offDropout: off, dcl } }
    }
  }
}
