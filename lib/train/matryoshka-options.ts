// Matryoshka training's options (train()'s matryoshkaDims and matryoshkaWeights): their checks, and the plan a
// step follows (lib/train/matryoshka.ts): the dimensions, largest first, with their weights.
import { inRange } from '../util/number-range.js'

/** One size of the vectors trained, and its weight in the sum. */
export interface MatryoshkaDim {
  dim: number
  weight: number
}

export const MATRYOSHKA_WEIGHT_MAX = 1e3

/**
 * Checks train()'s matryoshkaDims / matryoshkaWeights as given (before the model is known); throws a
 * TypeError or RangeError naming the option. Weights need dims, and as many.
 */
export function checkMatryoshkaOptions(dims: unknown, weights: unknown): void {
  if (dims === undefined) {
    if (weights !== undefined) throw new TypeError('train: matryoshkaWeights needs matryoshkaDims (the sizes they weigh)')
    return
  }
  if (!Array.isArray(dims) || dims.length === 0) throw new TypeError('train: matryoshkaDims must be a non-empty array of dimensions')
  for (const d of dims)
    if (!inRange(d, { int: true, min: 1 })) throw new RangeError(`train: matryoshkaDims must hold integers >= 1 (got ${JSON.stringify(d)})`)
  const seen = new Set<number>()
  for (const d of dims as number[]) {
    if (seen.has(d)) throw new RangeError(`train: matryoshkaDims lists ${d} twice`)
    seen.add(d)
  }
  if (weights === undefined) return
  if (!Array.isArray(weights) || weights.length !== dims.length)
    throw new TypeError(`train: matryoshkaWeights must hold one weight per dimension of matryoshkaDims (${dims.length})`)
  for (const w of weights)
    if (!inRange(w, { min: 0, max: MATRYOSHKA_WEIGHT_MAX }))
      throw new RangeError(`train: matryoshkaWeights must hold numbers in [0, ${MATRYOSHKA_WEIGHT_MAX}] (got ${JSON.stringify(w)})`)
  if ((weights as number[]).every((w) => w === 0)) throw new RangeError('train: matryoshkaWeights are all 0: nothing would be trained')
}

/**
 * The dimensions to train, largest first (weights default to 1), for a model of vectors `hidden` wide (its hidden size,
 * or its last Dense module's width); null without matryoshkaDims (the objective over the whole vectors, as before). A
 * dimension beyond that width is an error.
 */
export function matryoshkaPlan(dims: number[] | undefined, weights: number[] | undefined, hidden: number): MatryoshkaDim[] | null {
  if (!dims) return null
  const plan = dims.map((dim, i) => ({ dim, weight: weights?.[i] ?? 1 }))
  const over = plan.find((p) => p.dim > hidden)
  if (over) throw new RangeError(`train: matryoshkaDims ${over.dim} is more than the model's vectors have (${hidden})`)
  return plan.sort((a, b) => b.dim - a.dim)
}

/** The largest trained dimension below the hidden size: the scratch's width (0: none). */
export function scratchDim(plan: MatryoshkaDim[] | null, hidden: number): number {
  return plan?.find((p) => p.dim < hidden)?.dim ?? 0
}
