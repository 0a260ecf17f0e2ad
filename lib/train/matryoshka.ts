// Matryoshka training (Kusupati et al., 2022; sentence-transformers' MatryoshkaLoss): the run's objective over
// the first d dimensions of the sentence vectors, for each d of a list, weighted and summed,
//   L = Σ_d w_d · L_objective(z[:, :d]),
// so that the vectors cut to any of those sizes (SentenceEncoder's truncateDim) stay good embeddings. The losses
// read contiguous rows: each d < H gets its vectors copied into a scratch [V·N, d] (ops.leadingColumns), its loss
// gradient there, added back into the first d columns of dL/dz with its weight (ops.addLeadingColumns). The
// scratch is allocated once for the largest batch, so a captured CUDA step graph holds these ops like the others.
import * as ops from '../ops.js'
import { Tensor, type Device } from '../tensor.js'
import { lossFromResults, objectiveLoss, type BatchTargets, type LossSettings } from './objective.js'
import { scratchDim, type MatryoshkaDim } from './matryoshka-options.js'

/** A step's loss: the total, its parts (each summed over the dimensions with their weights) and, for Matryoshka, each dimension's own loss. */
export interface StepLoss {
  loss: number
  parts: Record<string, number>
  /** Per trained dimension (its number as the key): the objective's loss over the vectors' first d dimensions, unweighted. */
  dimLosses?: Record<string, number>
}

/**
 * A training step's objective: objectiveLoss over the whole vectors, or its Matryoshka sum. Holds the scratch
 * of the truncated vectors and their gradient for `maxRows` rows.
 */
export class StepObjective {
  private readonly zNarrow: Tensor | null
  private readonly gNarrow: Tensor | null

  constructor(
    private readonly s: LossSettings,
    private readonly plan: MatryoshkaDim[] | null,
    maxRows: number,
    hidden: number,
    device: Device,
  ) {
    const d = scratchDim(plan, hidden)
    this.zNarrow = d > 0 ? Tensor.zeros([maxRows * d], device) : null
    this.gNarrow = d > 0 ? Tensor.zeros([maxRows * d], device) : null
  }

  /** The loss of z ([V·n, H]) with dL/dz written into `grad` (same shape). */
  loss(z: Tensor, grad: Tensor, n: number, batch: BatchTargets = {}): StepLoss {
    const plan = this.plan
    if (!plan) return objectiveLoss(this.s, z, grad, n, batch)
    const [rows, H] = z.shape
    // Without the whole vectors among the sizes, their last columns get no gradient: dL/dz starts at zero.
    if (plan[0].dim < H) grad.fill(0)
    const results = plan.map(({ dim, weight }) => {
      if (dim === H) {
        const r = objectiveLoss(this.s, z, grad, n, batch)
        if (weight !== 1) ops.scaleInplace(grad, weight)
        return r
      }
      const zd = this.zNarrow!.view(0, [rows, dim])
      const gd = this.gNarrow!.view(0, [rows, dim])
      ops.leadingColumns(zd, z)
      const r = objectiveLoss(this.s, zd, gd, n, batch)
      ops.addLeadingColumns(grad, gd, weight)
      return r
    })
    return combine(plan, results)
  }

  /**
   * loss()'s numbers from the values its loss ops returned in call order (a CUDA step graph's results): each
   * dimension's values, as lossFromResults reads them.
   */
  fromResults(values: number[]): StepLoss {
    const plan = this.plan
    if (!plan) return lossFromResults(this.s, values)
    const per = values.length / plan.length
    if (!Number.isInteger(per)) throw new Error(`${values.length} loss values for ${plan.length} Matryoshka dimensions`)
    return combine(
      plan,
      plan.map((_, i) => lossFromResults(this.s, values.slice(i * per, (i + 1) * per))),
    )
  }

  dispose(): void {
    this.zNarrow?.dispose()
    this.gNarrow?.dispose()
  }
}

/** The weighted sum of each dimension's loss and parts, and the dimensions' own losses. */
function combine(plan: MatryoshkaDim[], results: { loss: number; parts: Record<string, number> }[]): StepLoss {
  let loss = 0
  const parts: Record<string, number> = {}
  const dimLosses: Record<string, number> = {}
  results.forEach((r, i) => {
    const { dim, weight } = plan[i]
    loss += weight * r.loss
    for (const [k, v] of Object.entries(r.parts)) parts[k] = (parts[k] ?? 0) + weight * v
    dimLosses[dim] = r.loss
  })
  return { loss, parts, dimLosses }
}
