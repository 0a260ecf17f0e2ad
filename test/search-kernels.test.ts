// The CPU search's three kernels (native/cpu/search.cpp: AVX-512, AVX2 and portable vectors of 16, 8 and 4 floats,
// each with its own tile of rows x queries): every dot product is the same 16-lane sum with its multiplies and adds
// apart, so all three give the same scores bit for bit, and so the same hits. Each kernel runs in its own process
// (SIMCSEPP_SEARCH_KERNEL is read once); those this CPU lacks are skipped. The top k against a float64 brute force
// is in test/search-top-k.test.ts.
import t from 'tap'
import { addon } from '../lib/native.js'
import { Tensor, nativeOf } from '../lib/tensor.js'
import { runSelfAsChild } from './helpers/self-child.js'
import { randn } from './helpers/parity.mjs'

// [rows, dim, queries, k]: dimensions below, at and past the 16 lanes (tails of 1, 5 and 15), row and query counts
// that leave every tile shape a remainder, k beyond the rows.
const cases: [number, number, number, number][] = [
  [1, 1, 1, 3],
  [7, 16, 5, 2],
  [300, 37, 7, 5],
  [1000, 47, 16, 10],
  [513, 768, 3, 4],
]

function results(): { scores: string; indices: number[] }[] {
  return cases.map(([rows, dim, nq, k], i) => {
    const corpus = Tensor.from(randn(rows * dim, 80 + i), [rows, dim])
    const queries = randn(nq * dim, 90 + i)
    const scores = new Float32Array(nq * k)
    const indices = new Int32Array(nq * k).fill(-1)
    addon.searchTopK(nativeOf(corpus, 'corpus'), queries, k, 0, rows, scores, indices)
    return { scores: Buffer.from(scores.buffer).toString('base64'), indices: [...indices] }
  })
}

if (process.env.SIMCSEPP_SEARCH_KERNEL_TEST_CHILD) {
  process.stdout.write(JSON.stringify({ kernel: addon.gemmInfo().searchKernel, results: results() }))
} else {
  type Child = { kernel: string; results: ReturnType<typeof results> }
  const run = (kernel: string) =>
    runSelfAsChild<Child>(import.meta.url, 'SIMCSEPP_SEARCH_KERNEL_TEST_CHILD', { SIMCSEPP_SEARCH_KERNEL: kernel })
  const generic = run('generic')
  t.test('search kernels: the portable one runs when asked for', async (t) => {
    t.equal(generic.kernel, 'generic')
    t.equal(generic.results.length, cases.length)
  })
  t.test('search kernels: unset, the widest this CPU has', async (t) => {
    t.ok(['avx512', 'avx2', 'generic'].includes(addon.gemmInfo().searchKernel), addon.gemmInfo().searchKernel)
  })
  for (const kernel of ['avx2', 'avx512']) {
    const other = run(kernel)
    t.test(
      `search kernels: ${kernel} gives the portable kernel's scores and hits bit for bit`,
      { skip: other.kernel === kernel ? false : `this CPU lacks ${kernel} (the process ran ${other.kernel})` },
      async (t) => {
        cases.forEach(([rows, dim, nq, k], i) => {
          const shape = `rows=${rows} dim=${dim} queries=${nq} k=${k}`
          t.equal(other.results[i].scores, generic.results[i].scores, `${shape}: scores`)
          t.same(other.results[i].indices, generic.results[i].indices, `${shape}: indices`)
        })
      },
    )
  }
}
