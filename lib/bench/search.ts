// `simcsepp bench search`: exact float32 cosine search (VectorIndex, the fused native pass) against binary search
// (BinaryIndex: Hamming distance over the signs, then without and with rescoring), alternated in one run over the same
// random corpus and queries: per way the median milliseconds per batch of queries, its speed over exact search, and
// the index's bytes. Random vectors say nothing of how much ranking the signs keep (that is the model's:
// `simcsepp eval --retrieval DIR --binary`), only of the time and memory.
import { addon } from '../native.js'
import { BinaryIndex } from '../embed/binary-index.js'
import { VectorIndex } from '../embed/search.js'
import { median } from './median.js'

export interface SearchBenchOptions {
  corpus: number
  dim: number
  queries: number
  topK: number
  rescore: number
  repeats: number
}

export interface SearchBenchRow {
  search: string
  medianMs: number
  /** Exact search's median over this one's. */
  speedup: number
  indexBytes: number
}

export interface SearchBenchResult {
  /** The Hamming kernel (native/cpu/hamming_search.cpp) and the cosine search's. */
  hammingKernel: string
  searchKernel: string
  rows: SearchBenchRow[]
}

export function benchSearch(o: SearchBenchOptions): SearchBenchResult {
  let s = 12345
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1
  const corpus = Float32Array.from({ length: o.corpus * o.dim }, rnd)
  const queries = Float32Array.from({ length: o.queries * o.dim }, rnd)
  const exact = VectorIndex.from(corpus, o.dim)
  try {
    const binary = BinaryIndex.from(corpus, o.dim)
    const ways = [
      { search: 'exact float32', bytes: o.corpus * o.dim * 4, run: () => exact.search(queries, { topK: o.topK }) },
      { search: 'binary', bytes: o.corpus * binary.bytesPerRow, run: () => binary.search(queries, { topK: o.topK, rescore: 0 }) },
      {
        search: `binary, rescore ${o.rescore}`,
        bytes: o.corpus * binary.bytesPerRow,
        run: () => binary.search(queries, { topK: o.topK, rescore: o.rescore }),
      },
    ]
    for (const w of ways) w.run() // warm-up
    const times: number[][] = ways.map(() => [])
    for (let r = 0; r < o.repeats; r++)
      ways.forEach((w, i) => {
        const t0 = performance.now()
        w.run()
        times[i].push(performance.now() - t0)
      })
    const base = median(times[0])
    const info = addon.gemmInfo()
    return {
      hammingKernel: info.hammingKernel,
      searchKernel: info.searchKernel,
      rows: ways.map((w, i) => ({ search: w.search, medianMs: median(times[i]), speedup: base / median(times[i]), indexBytes: w.bytes })),
    }
  } finally {
    exact.dispose()
  }
}
