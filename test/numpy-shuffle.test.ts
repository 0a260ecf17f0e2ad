// numpy's legacy random stream (lib/util/numpy-shuffle.ts), which MTEB's classification draws come from: MT19937's
// outputs and RandomState(seed).shuffle against numpy itself where python3 has numpy, and against values numpy 2.4.6
// printed (`np.random.RandomState(42).randint(0, 2**32, 3, dtype=np.uint64)`, `.shuffle(list(range(10)))`) elsewhere.
import t from 'tap'
import { MersenneTwister, numpyShuffle } from '../lib/util/numpy-shuffle.js'
import { needsNumpy, numpyJson } from './helpers/numpy.js'

t.test('numpy 2.4.6’s printed values', async (t) => {
  const rng = new MersenneTwister(42)
  t.same([rng.nextUint32(), rng.nextUint32(), rng.nextUint32()], [1608637542, 3421126067, 4083286876])
  const ten = [...Array(10).keys()]
  numpyShuffle(ten, 42)
  t.same(ten, [8, 1, 5, 0, 7, 2, 9, 4, 3, 6])
  t.throws(() => new MersenneTwister(-1), /seed must be an integer in \[0, 2\^32\)/)
  t.throws(() => new MersenneTwister(2 ** 32), /seed must be/)
})

t.test('against numpy: outputs past a twist, shuffles of many lengths and seeds, repeated shuffles', needsNumpy, async (t) => {
  const outputs = numpyJson('r = np.random.RandomState(7)\nprint(json.dumps([int(x) for x in r.randint(0, 2**32, 1500, dtype=np.uint64)]))')
  const rng = new MersenneTwister(7)
  t.same(
    Array.from({ length: 1500 }, () => rng.nextUint32()),
    outputs,
    '1,500 outputs of seed 7 (two twists of the state)',
  )
  const cases = [
    [0, 1],
    [1, 2],
    [42, 3],
    [42, 17],
    [123456789, 1000],
    [2 ** 32 - 1, 70000],
  ] as const
  for (const [seed, n] of cases) {
    const want = numpyJson(`a = list(range(${n}))\nnp.random.RandomState(${seed}).shuffle(a)\nprint(json.dumps(a))`)
    const got = [...Array(n).keys()]
    numpyShuffle(got, seed)
    t.same(got, want, `seed ${seed}, ${n} items`)
  }
  // MTEB shuffles one order again before each draw; numpy's global seed and shuffle of an array is the same stream.
  const want = numpyJson(
    'a = np.arange(500)\nfor e in range(4):\n    np.random.seed(42)\n    np.random.shuffle(a)\nprint(json.dumps([int(x) for x in a]))',
  )
  const got = [...Array(500).keys()]
  for (let e = 0; e < 4; e++) numpyShuffle(got, 42)
  t.same(got, want, 'four shuffles of one order')
})
