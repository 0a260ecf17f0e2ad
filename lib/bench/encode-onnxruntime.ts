// `bench encode`'s comparison with onnxruntime-node, what a Node tool would otherwise run: the benchmark's
// model exported to ONNX (exportOnnx), run by onnxruntime's CPU provider on the same length-sorted batches of
// the same token ids, with as many intra-op threads as our thread pool, and timed the same way. Its vectors are
// compared with SentenceEncoder's, so that the two are known to compute the same thing (the q8 export's, to
// say how far its int8 weights move them). onnxruntime-node is not a dependency of simcsepp: where it cannot
// be imported, the comparison says so and is left out.
import { join } from 'node:path'
import { exportOnnx } from '../export/export-onnx.js'
import type { WeightStorage } from '../export/graph-builder.js'
import { cosineSimilarity } from '../util/vectors.js'
import { EmbeddingEngine, type Tokenized } from '../embed/engine.js'
import { loadOnnxruntime, onnxFeeds } from '../embed/onnxruntime.js'
import { addon } from '../native.js'
import { median } from './median.js'

export interface OnnxruntimeRate {
  /** Sentences per second with length-sorted batches. */
  perSec: number
  /** Largest |difference| between its vectors and SentenceEncoder's (`ours`). */
  maxAbsDiff: number
  /** Largest 1 - cos between its vector of a sentence and SentenceEncoder's. */
  maxCosineDistance: number
  version: string
}

/**
 * onnxruntime-node on the model in `dir` (a random model with its tokenizer) exported with `weights`, over
 * the sentences `tok` holds (ids and types), in SentenceEncoder's length-sorted batches; `ours[i]` is
 * SentenceEncoder's vector of sentence i. A string says why it could not run.
 */
export async function onnxruntimeRate(
  dir: string,
  tok: Tokenized,
  batchSize: number,
  ours: Float32Array[],
  repeatBelowSeconds: number,
  weights: WeightStorage = 'fp32',
): Promise<OnnxruntimeRate | string> {
  const ort = await loadOnnxruntime()
  if (typeof ort === 'string') return ort
  const exported = await exportOnnx(dir, join(dir, `onnx-export-${weights}`), { weights })
  const session = await ort.InferenceSession.create(exported.onnxFile, {
    intraOpNumThreads: addon.numThreads(),
    interOpNumThreads: 1,
  })
  try {
    const batches = EmbeddingEngine.batches(tok, batchSize, true)
    // The feeds are built before the clock starts: what is timed is the model.
    const feeds = batches.map((indices) => onnxFeeds(ort, tok, indices, exported.inputs))
    const runAll = async (keep: boolean) => {
      const out: Float32Array[] = []
      for (let b = 0; b < batches.length; b++) {
        const r = (await session.run(feeds[b])).sentence_embedding
        if (!keep) continue
        const H = r.dims[1]
        batches[b].forEach((i, row) => (out[i] = r.data.slice(row * H, (row + 1) * H)))
      }
      return out
    }
    const theirs = await runAll(true) // also the warm-up
    let maxAbsDiff = 0,
      maxCosineDistance = 0
    for (let i = 0; i < ours.length; i++) {
      for (let k = 0; k < ours[i].length; k++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ours[i][k] - theirs[i][k]))
      maxCosineDistance = Math.max(maxCosineDistance, 1 - cosineSimilarity(ours[i], theirs[i]))
    }
    const times: number[] = []
    while (times.length < 3) {
      const t0 = performance.now()
      await runAll(false)
      times.push((performance.now() - t0) / 1000)
      if (times[times.length - 1] >= repeatBelowSeconds) break
    }
    return { perSec: ours.length / median(times), maxAbsDiff, maxCosineDistance, version: ort.env.versions?.common ?? '' }
  } finally {
    await session.release()
  }
}
