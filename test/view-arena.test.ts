// The activation arena past one dimension's worth of floats (2^31 - 1): BERT-base training at B = 512, T = 32 takes
// 5.3e9 floats, which a one-dimensional tensor cannot hold. The buffer is then rows of floats; views take flat
// offsets across the rows.
import t from 'tap'
import { arenaShape, ViewArena, viewFloats, VIEW_ALIGN_FLOATS } from '../lib/model/view-arena.js'
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
  const shapes = [[7, 300], [450], [3, 3, 100]] // 2100 + 450 + 900 floats (2112 + 464 + 912 aligned): past two 1000-float rows
  const floats = shapes.reduce((a, s) => a + viewFloats(s.reduce((x, y) => x * y, 1)), 0)
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

t.test('ViewArena starts every view at a multiple of 16 floats (64 bytes), and its count must say so', async (t) => {
  t.equal(VIEW_ALIGN_FLOATS, 16)
  t.same([0, 1, 15, 16, 17, 33].map(viewFloats), [0, 16, 16, 16, 32, 48])
  const shapes = [[5], [3, 1], [7], [2, 8]] // odd counts: unaligned, the views would start at floats 5, 8 and 15
  const arena = new ViewArena(
    'cpu',
    () => 16 + 16 + 16 + 16,
    (take) => shapes.map((s) => take(s)),
    'test arena',
  )
  const views = arena.acquire(1, 1, true)
  // The buffer holds its own float offsets: each view's first value is where it starts.
  const buffer = (arena as unknown as { buffer: Tensor }).buffer
  buffer.copyFrom(Float32Array.from({ length: buffer.numel }, (_, i) => i))
  t.same(
    views.map((v) => v.toFloat32Array()[0]),
    [0, 16, 32, 48],
  )
  t.same(
    views.map((v) => v.numel),
    [5, 3, 7, 16],
  )
  const short = new ViewArena(
    'cpu',
    () => 80,
    (take) => shapes.map((s) => take(s)),
    'short arena',
  )
  t.throws(() => short.acquire(1, 1, true), /short arena: views take 64 floats, its count was 80/)
})

t.test('a tensor dimension past 2^31 - 1 is refused by name', async (t) => {
  t.throws(() => Tensor.zeros([2 ** 31]), /shape\[0\] = 2147483648 is too large/)
})
