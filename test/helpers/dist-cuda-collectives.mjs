// The collectives of native/bind_dist.cpp on CUDA tensors, run under mpirun by test/cuda-distributed.test.ts
// with the stand-in NCCL (emulator/fake_nccl.cpp): exact sums and gathers, including empty slices, and a
// collective the ranks call with different counts, which must end in an Error on every rank (a real NCCL
// would hang), after which the communicator still works; and a step graph holding a collective, replayed, then
// refused after distFinalize. Each rank writes what it saw as JSON.
// Plain node over the built dist/ (mpirun starts it without the TypeScript loader).
// Usage: node dist-cuda-collectives.mjs OUT_PREFIX   (writes OUT_PREFIX.<rank>.json)
import { writeFileSync } from 'node:fs'

const [prefix] = process.argv.slice(2)
const dist = new URL('../../dist/', import.meta.url)
const [{ addon }, { Tensor, nativeOf }] = await Promise.all([
  import(new URL('native.js', dist).href),
  import(new URL('tensor.js', dist).href),
])
const { rank, size } = addon.distInit()
/** @type {Record<string, unknown> & { gathers: number[][] }} */
const seen = { rank, size, gathers: [] }
/** @param {number[]} values */
const cuda = (values) => Tensor.from(Float32Array.from(values), [values.length], 'cuda')

// All-reduce: rank r holds (r + 1) * [1, 2, ..., 5] + 0.25 r.
const x = cuda([1, 2, 3, 4, 5].map((v) => (rank + 1) * v + 0.25 * rank))
addon.distAllReduceSum(nativeOf(x, 'x'))
seen.sum = Array.from(x.toFloat32Array())
seen.cudaPath = addon.distStats().cudaPath

// All-gather with uneven and empty slices: rank r's slice is r + 10 * i, i < counts[r].
for (const counts of [
  [3, 2],
  [0, 4],
  [2, 0],
]) {
  const total = counts[0] + counts[1]
  const values = new Float32Array(total).fill(-1)
  const at = rank === 0 ? 0 : counts[0]
  for (let i = 0; i < counts[rank]; i++) values[at + i] = rank + 10 * i
  const g = Tensor.from(values, [total], 'cuda')
  addon.distAllGather(nativeOf(g, 'g'), counts)
  seen.gathers.push(Array.from(g.toFloat32Array()))
}

// Ranks out of step: 3 floats on rank 0, 4 on rank 1.
try {
  addon.distAllReduceSum(nativeOf(cuda(new Array(3 + rank).fill(1)), 'y'))
  seen.mismatch = 'no error'
} catch (e) {
  seen.mismatch = e instanceof Error ? e.message : String(e)
}
const z = cuda([rank, 1])
addon.distAllReduceSum(nativeOf(z, 'z'))
seen.after = Array.from(z.toFloat32Array())

// A step graph holding a collective: replayed, then refused once the process group has ended (its communicator
// destroyed, NCCL's kernels would run with freed state).
const bound = new Int32Array(1)
const session = addon.graphSession([bound.byteLength], 1)
const w = cuda([rank + 1, 2])
const graph = addon.graphCapture(session, [bound], () => addon.distAllReduceSum(nativeOf(w, 'w')))
addon.graphLaunch(session, graph, [bound], 0n, 0, 1)
seen.replayed = Array.from(w.toFloat32Array())
addon.distFinalize()
try {
  addon.graphLaunch(session, graph, [bound], 0n, 0, 1)
  seen.afterFinalize = 'replayed'
} catch (e) {
  seen.afterFinalize = e instanceof Error ? e.message : String(e)
}
seen.deviceAfter = Array.from(cuda([5]).toFloat32Array())
writeFileSync(`${prefix}.${rank}.json`, JSON.stringify(seen))
