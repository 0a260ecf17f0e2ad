// Which rows of a training step's stacked batch this process encodes, and in which encoder passes.
//
// The stacked batch holds V views of n sentences, view by view (row v·n + i is sentence i of view v). One
// process encodes all V·n rows. Of R ranks, rank r encodes sentences [s0, s0 + m) of every view
// (rankSlice): V runs of m rows, n apart, which it gathers into one batch of V·m rows ("its rows", l = 0 ..
// V·m - 1, row l being stacked row ⌊l/m⌋·n + s0 + l mod m). Micro-batches of M rows split its rows into
// passes [l0, l0 + count) (M = 0, or at least its rows: one pass); a pass may span two views. Each pass
// draws the dropout masks of its rows' places in the stacked batch (a RowPlacement), so any split computes
// the step of one process.
import type { RowPlacement } from '../native.js'
import { rankSlice } from '../distributed/launch.js'

export class PassLayout {
  /** Every rank's sentences [start, end) of each view (one entry without ranks). */
  readonly slices: [number, number][]
  /** This process's first sentence of each view, and how many (m = 0: a rank left without sentences). */
  readonly s0: number
  readonly m: number
  /** This process's passes over its rows: [l0, count]. */
  readonly passes: [number, number][] = []

  /**
   * @param V views, @param n sentences per view, @param ranks this process's rank and the rank count (null:
   * one process), @param microBatch rows per pass (0: one pass).
   */
  constructor(
    readonly V: number,
    readonly n: number,
    private readonly ranks: { rank: number; size: number } | null,
    microBatch: number,
  ) {
    this.slices = ranks ? Array.from({ length: ranks.size }, (_, r) => rankSlice(n, ranks.size, r)) : [[0, n]]
    const [s0, s1] = this.slices[ranks ? ranks.rank : 0]
    this.s0 = s0
    this.m = s1 - s0
    const rows = this.rows
    const M = microBatch > 0 && microBatch < rows ? microBatch : rows
    for (let l0 = 0; l0 < rows; l0 += M) this.passes.push([l0, Math.min(M, rows - l0)])
  }

  /** This process's rows: V·m. */
  get rows(): number {
    return this.V * this.m
  }

  /** Where the pass starting at this process's row l0 sits in the stacked batch (its dropout masks). */
  place(l0: number): RowPlacement {
    return this.ranks ? { first: this.s0, block: this.m, stride: this.n, skip: l0 } : l0
  }

  /** The stacked batch's row of this process's row l. */
  stackedRow(l: number): number {
    return this.ranks ? Math.floor(l / this.m) * this.n + this.s0 + (l % this.m) : l
  }

  /**
   * Calls f(l, r, k) for each run of k of this process's rows from l that are consecutive rows of the stacked
   * batch from r, over its rows [l0, l0 + count): one run without ranks, one per view spanned with them.
   */
  runs(l0: number, count: number, f: (l: number, r: number, k: number) => void): void {
    for (let l = l0; l < l0 + count;) {
      const k = this.ranks ? Math.min(l0 + count - l, this.m - (l % this.m)) : l0 + count - l
      f(l, this.stackedRow(l), k)
      l += k
    }
  }

  /** This process's rows of per-row arrays of the stacked batch (`width` entries a row), gathered in order. */
  gather<A extends Int32Array | Uint8Array>(a: A, width: number): A {
    if (!this.ranks) return a
    const out = new (a.constructor as new (length: number) => A)(this.rows * width)
    for (let v = 0; v < this.V; v++) {
      const from = (v * this.n + this.s0) * width
      out.set(a.subarray(from, from + this.m * width), v * this.m * width)
    }
    return out
  }
}
