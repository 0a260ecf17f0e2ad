// The addon's collectives (native/bind_dist.cpp) in one process: every argument checked with a message
// naming it, nothing before distInit(), and on a world of one rank each collective leaves its tensor as
// it was and counts the bytes it was handed. MPI initialises as a singleton here (no mpirun).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { addon } from '../lib/native.js'
import { Tensor, nativeOf } from '../lib/tensor.js'

const hasMpi = spawnSync('mpirun', ['--version']).status === 0
const skip = hasMpi ? false : 'no MPI installed (CI installs Open MPI: .ci/run)'

t.test('before distInit: an error saying so', async (t) => {
  const x = nativeOf(Tensor.zeros([3]), 'x')
  t.throws(() => addon.distAllReduceSum(x), /distAllReduceSum: call distInit\(\) first/)
  t.throws(() => addon.distMax(1), /distMax: call distInit\(\) first/)
  t.same(addon.distStats(), { bytes: 0 })
})

t.test('one rank: the collectives keep the data and count the bytes; bad arguments are named', { skip }, async (t) => {
  const info = addon.distInit()
  t.same([info.rank, info.size], [0, 1])
  t.match(info.flavour, /^(Open MPI|MPICH)$/)
  const data = new Float32Array([1, -2, 3.5, 4, 5, 6])
  const x = Tensor.from(data, [6])
  addon.distAllReduceSum(nativeOf(x, 'x'))
  addon.distAllGather(nativeOf(x, 'x'), [6])
  addon.distBroadcast(nativeOf(x, 'x'), 0)
  t.same(Array.from(x.toFloat32Array()), Array.from(data))
  t.equal(addon.distMax(-2.5), -2.5)
  t.equal(addon.distStats().bytes, 2 * 6 * 4, 'all-reduce and all-gather: 24 bytes each')
  addon.distBarrier()

  const n = nativeOf(x, 'x')
  const bad: [() => unknown, RegExp][] = [
    [() => addon.distAllReduceSum(null as never), /Expected t to be/],
    [() => addon.distAllGather(n, 'x' as never), /Expected counts to be an array of numbers/],
    [() => addon.distAllGather(n, [3, 3]), /Expected counts to hold one entry per rank \(1\) but it holds 2/],
    [() => addon.distAllGather(n, [-1]), /Expected counts\[0\] to be a non-negative integer/],
    [() => addon.distAllGather(n, [2.5]), /Expected counts\[0\] to be a non-negative integer/],
    [() => addon.distAllGather(n, [5]), /Expected counts to add up to the 6 elements of t but they add up to 5/],
    [() => addon.distBroadcast(n, 1), /Expected root to be a rank below 1 but received 1/],
    [() => addon.distBroadcast(n, -1), /root/],
    [() => addon.distMax(NaN), /x/],
    [() => addon.distMax('1' as never), /x/],
    [() => addon.distAbort(-1 as never), /code/],
  ]
  for (const [f, message] of bad) t.throws(f, message)
  const gone = Tensor.zeros([2])
  const handle = nativeOf(gone, 'gone')
  gone.dispose()
  t.throws(() => addon.distAllReduceSum(handle), /disposed/)
  addon.distFinalize()
  addon.distFinalize() // once only
  t.throws(() => addon.distAllReduceSum(n), /distAllReduceSum: MPI was finalized/)
})
