// PassLayout (lib/train/pass-layout.ts): which rows of the stacked batch a process encodes, in which passes,
// and where each pass's rows sit in the stacked batch (their dropout masks). The placements themselves are
// checked against the whole batch's masks in test/micro-batch-masks.test.ts.
import t from 'tap'
import { PassLayout } from '../lib/train/pass-layout.js'

/** Every (row of the process, stacked row) pair that runs() reports over the process's passes. */
function mapped(layout: PassLayout): [number, number][] {
  const out: [number, number][] = []
  for (const [l0, count] of layout.passes)
    layout.runs(l0, count, (l, r, k) => Array.from({ length: k }, (_, i) => out.push([l + i, r + i])))
  return out
}

t.test('one process: all rows, in passes of M, each starting at its own row', async (t) => {
  const layout = new PassLayout(3, 5, null, 4)
  t.equal(layout.rows, 15)
  t.same(layout.passes, [
    [0, 4],
    [4, 4],
    [8, 4],
    [12, 3],
  ])
  t.same(layout.place(8), 8)
  t.same(
    mapped(layout).map(([l, r]) => l - r),
    new Array(15).fill(0),
    'row l is stacked row l',
  )
  const ids = Int32Array.from({ length: 15 * 2 }, (_, i) => i)
  t.equal(layout.gather(ids, 2), ids, 'gather returns the array itself')
  t.same(new PassLayout(3, 5, null, 0).passes, [[0, 15]], 'M = 0: one pass')
  t.same(new PassLayout(3, 5, null, 15).passes, [[0, 15]], 'M = the rows: one pass')
})

t.test('ranks: each takes its sentences of every view; together they cover the stacked batch once', async (t) => {
  const [V, n] = [3, 5]
  const layouts = [0, 1].map((rank) => new PassLayout(V, n, { rank, size: 2 }, 4))
  t.same(
    layouts.map((l) => [l.s0, l.m, l.rows]),
    [
      [0, 2, 6],
      [2, 3, 9],
    ],
  )
  t.same(layouts[1].passes, [
    [0, 4],
    [4, 4],
    [8, 1],
  ])
  // Rank 1's rows: sentences 2, 3, 4 of views 0, 1, 2.
  t.same(
    Array.from({ length: 9 }, (_, l) => layouts[1].stackedRow(l)),
    [2, 3, 4, 7, 8, 9, 12, 13, 14],
  )
  t.same(layouts[1].place(4), { first: 2, block: 3, stride: 5, skip: 4 })
  // runs() splits a pass where it crosses a view: rank 1's pass [4, 4) is rows 4, 5 (view 1) and 6, 7 (view 2).
  const seen: number[][] = []
  layouts[1].runs(4, 4, (l, r, k) => seen.push([l, r, k]))
  t.same(seen, [
    [4, 8, 2],
    [6, 12, 2],
  ])
  const covered = layouts.flatMap((l) => mapped(l).map(([, r]) => r)).sort((a, b) => a - b)
  t.same(
    covered,
    Array.from({ length: V * n }, (_, r) => r),
    'every stacked row exactly once',
  )
  // gather() picks the rank's rows of per-row arrays, in its order.
  const keep = Uint8Array.from({ length: V * n }, (_, r) => r)
  t.same(Array.from(layouts[1].gather(keep, 1)), [2, 3, 4, 7, 8, 9, 12, 13, 14])
  const ids = Int32Array.from({ length: V * n * 2 }, (_, i) => i)
  t.same(Array.from(layouts[0].gather(ids, 2)), [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23])
})

t.test('a rank left without sentences has no pass', async (t) => {
  const layouts = [0, 1, 2].map((rank) => new PassLayout(2, 2, { rank, size: 3 }, 0))
  t.same(
    layouts.map((l) => [l.s0, l.m, l.passes.length]),
    [
      [0, 0, 0],
      [0, 1, 1],
      [1, 1, 1],
    ],
  )
  t.same(layouts[0].gather(new Int32Array(4), 1).length, 0)
})
