// Selective dropout with masks from Philox(seed, offset, element index): the same call on CPU and
// CUDA draws the same mask, and calling it again on the upstream gradient is the backward pass.
import { addon, type RowPlacement } from './native.js'

export type { RowPlacement }
import { checkOptions } from './options.js'
import { Tensor, describe, nativeOf } from './tensor.js'

export interface DropoutOptions {
  /** Drop probability in [0, 1]. */
  p: number
  /** Philox key (a non-negative integer or bigint < 2^64). */
  seed: number | bigint
  /** Philox stream offset: use a distinct one per dropout site and step. Default 0. */
  offset?: number | bigint
  /** One entry per row (first dimension) of x: 0 passes the row unchanged (the dropout-free view). */
  keepRows?: Uint8Array | ArrayLike<number | boolean>
  /**
   * Where x's rows sit in a larger batch (default 0: x is the whole batch): a micro-batch's first row, or
   * the runs of rows a data-parallel rank holds (RowPlacement); x's rows get exactly that batch's masks.
   */
  firstRow?: RowPlacement
  /** Write into this tensor (it may be x itself) instead of allocating the result. */
  out?: Tensor
}

/** v as a RowPlacement, or a TypeError naming `where` and what is wrong (the addon checks the same). */
export function checkRowPlacement(where: string, v: unknown): RowPlacement {
  const int = (x: unknown, min: number) => typeof x === 'number' && Number.isSafeInteger(x) && x >= min
  if (int(v, 0)) return v as number
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>
    const extra = Object.keys(o).filter((k) => !['first', 'block', 'stride', 'skip'].includes(k))
    if (extra.length > 0) throw new TypeError(`${where}: unknown field '${extra[0]}' (known: first, block, stride, skip)`)
    const block = o.block as number
    if (int(o.first, 0) && int(block, 1) && int(o.stride, block) && (o.skip === undefined || int(o.skip, 0)))
      return o as { first: number; block: number; stride: number; skip?: number }
  }
  throw new TypeError(
    `${where}: expected a non-negative integer or { first, block >= 1, stride >= block, skip? } (non-negative integers) but received ${describe(v)}`,
  )
}

function keepRowsArray(v: DropoutOptions['keepRows']): Uint8Array | null {
  if (v === undefined) return null
  if (v instanceof Uint8Array) return v
  if (v === null || typeof v !== 'object' || typeof (v as ArrayLike<unknown>).length !== 'number') {
    throw new TypeError(`dropout: expected option keepRows to be a Uint8Array or an array but received ${describe(v)}`)
  }
  return Uint8Array.from(Array.from(v as ArrayLike<number | boolean>, (k) => (k ? 1 : 0)))
}

/** y = mask ⊙ x / (1 − p) on rows whose keepRows entry is not 0; other rows pass unchanged. */
export function dropout(x: Tensor, options: DropoutOptions): Tensor {
  const o = checkOptions<DropoutOptions>('dropout', options, {
    p: 'number',
    seed: 'integer',
    offset: 'integer',
    keepRows: 'any',
    firstRow: 'any', // checkRowPlacement
    out: 'any',
  })
  if (o.p === undefined) throw new TypeError('dropout: option p is required')
  if (o.seed === undefined) throw new TypeError('dropout: option seed is required')
  const nx = nativeOf(x, 'x')
  const keep = keepRowsArray(o.keepRows)
  const firstRow = o.firstRow === undefined ? 0 : checkRowPlacement('dropout: option firstRow', o.firstRow)
  const out = o.out ?? Tensor.zeros(x.shape, x.device)
  try {
    addon.dropout(nx, nativeOf(out, 'out'), o.p, o.seed, o.offset ?? 0, keep, firstRow)
  } catch (e) {
    if (!o.out) out.dispose()
    throw e
  }
  return out
}

/** The backward of dropout(x, options): the same mask applied to the upstream gradient. */
export const dropoutBackward = dropout
