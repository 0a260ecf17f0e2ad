// Micro-batches on the 'cuda' device (issue 12): the chunked step on CUDA (a GPU, or the host emulator in
// CI) ends with the weights of the unchunked CUDA step, as on the CPU (test/micro-batch.test.ts).
import t from 'tap'
import { join } from 'node:path'
import { cudaStatus } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import type { StepInfo } from '../lib/train/events.js'
import { compareWeights } from './helpers/compare-weights.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

t.test('simcse++ in micro-batches of 7 rows on CUDA: the unchunked weights (fp32)', { skip }, async (t) => {
  const dir = tempDir('simcsepp-cuda-micro-batch-')
  const model = await microModel(dir, 'micro')
  const data = writeSentences(join(dir, 'data.txt'), 30)
  const lr = 3e-5
  const run = { model, data, steps: 2, batchSize: 8, maxLen: 7, evalEvery: 0, saveEvery: 0, seed: 3, lr }
  const cuda = { device: 'cuda' as const, precision: 'fp32' as const }
  await train({ ...run, ...cuda, out: join(dir, 'whole') })
  const passes: number[] = []
  await train({ ...run, ...cuda, microBatch: 7, out: join(dir, 'm7') }, { onStep: (s: StepInfo) => void passes.push(s.microBatches) })
  t.same(passes, [4, 4], '24 rows in 4 passes per step')
  const { worst, keyBias, worstName } = await compareWeights(join(dir, 'm7'), join(dir, 'whole'))
  t.ok(worst < 1e-5, `weights within ${worst.toExponential(2)} relative (worst: ${worstName})`)
  t.ok(keyBias <= 2 * 2 * lr, `key bias within ${keyBias.toExponential(2)}`)
})
