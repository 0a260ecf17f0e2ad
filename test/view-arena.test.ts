// The activation arena past one dimension's worth of floats (2^31 - 1): BERT-base training at B = 512, T = 32 takes
// 5.3e9 floats, which a one-dimensional tensor cannot hold. The buffer is then rows of floats; views take flat
// offsets across the rows.
import t from 'tap'
import { arenaShape, ViewArena } from '../lib/model/view-arena.js'
import { Tensor } from '../lib/tensor.js'

t.test('arenaShape: one dimension up to the limit, else rows of 2^20 holding at least the floats', async (t) => {
  t.same(arenaShape(0), [0])
  t.same(arenaShape(2 ** 31 - 1), [2 ** 31 - 1])
  t.same(arenaShape(2 ** 31), [2048, 2 ** 20])
  t.same(arenaShape(5328568320), [5082, 2 ** 20]) // BERT-base, 1536 rows of 32 tokens (measured on an H200)
  const [rows, row] = arenaShape(5328568320)
  t.ok(rows * row >= 5328568320 && (rows - 1) * row < 5328568320, 'the fewest rows that hold the floats')
  t.same(arenaShape(2500, 1000), [3, 1000])
  t.same(arenaShape(1000, 1000), [1000])
})

t.test('ViewArena over a buffer of rows: views across row boundaries hold their own values', async (t) => {
  const shapes = [[7, 300], [450], [3, 3, 100]] // 2100 + 450 + 900 floats: past two 1000-float rows
  const floats = shapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0)
  const arena = new ViewArena(
    'cpu',
    () => floats,
    (take) => shapes.map((s) => take(s)),
    'test arena',
    1000,
  )
  t.equal(arena.bytes, 0)
  const views = arena.acquire(1, 1, true)
  t.equal(arena.bytes, 4 * 4000, 'four rows of 1000 floats')
  views.forEach((v, k) => v.copyFrom(Float32Array.from({ length: v.numel }, (_, i) => k * 10000 + i)))
  views.forEach((v, k) => {
    t.same(v.shape, shapes[k])
    const got = v.toFloat32Array()
    t.ok(
      got.every((x, i) => x === k * 10000 + i),
      `view ${k} reads back what was written`,
    )
  })
  t.equal(arena.acquire(1, 1, true), views, 'the same shape: the same views')
  arena.dispose()
})

t.test('a tensor dimension past 2^31 - 1 is refused by name', async (t) => {
  t.throws(() => Tensor.zeros([2 ** 31]), /shape\[0\] = 2147483648 is too large/)
})
