// Data-parallel training with CUDA tensors (issue 13): under mpirun the ranks' vectors and gradients on
// the 'cuda' device travel through NCCL on a GPU, or through MPI on host copies where NCCL cannot be used
// (always on the host emulator, which is how CI runs this file: npm run test:emulated). Either way 2 ranks
// end with the weights of one CUDA process.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaStatus } from '../lib/index.js'
import { compareWeights } from './helpers/compare-weights.js'
import { microModel, needsCli, runCli, tempDir, writeSentences } from './helpers/train-corpus.js'
import { mpirun, needsMpirun } from './helpers/mpirun.js'

const status = cudaStatus()
const skip = needsMpirun.skip || needsCli.skip || (status.available ? false : `CUDA unavailable (${status.reason})`)

t.test('simcse++ on 2 ranks with CUDA tensors: the weights of one CUDA process (fp32)', { skip }, async (t) => {
  const dir = tempDir('simcsepp-cuda-dist-')
  const model = await microModel(dir, 'micro')
  const data = writeSentences(join(dir, 'data.txt'), 30)
  const lr = 3e-5
  const args = (out: string) =>
    ['train', '--model', model, '--data', data, '--steps', '2', '--batch-size', '8', '--max-len', '7', '--eval-every', '0'].concat([
      '--save-every',
      '0',
      '--seed',
      '3',
      '--lr',
      String(lr),
      '--device',
      'cuda',
      '--precision',
      'fp32',
      '--out',
      out,
    ])
  const one = runCli(args(join(dir, 'one')))
  t.equal(one.status, 0, one.stderr)
  const two = mpirun(2, args(join(dir, 'two')))
  t.equal(two.status, 0, two.stderr)
  t.match(
    two.stderr,
    status.emulated
      ? /CUDA tensors travel through MPI on host copies \(the emulated CUDA device is host memory\)/
      : /CUDA tensors travel through /,
  )
  const { worst, keyBias, worstName } = await compareWeights(join(dir, 'two'), join(dir, 'one'))
  t.ok(worst < 1e-5, `weights within ${worst.toExponential(2)} relative (worst: ${worstName})`)
  t.ok(keyBias <= 2 * 2 * lr, `key bias within ${keyBias.toExponential(2)}`)
  const log = readFileSync(join(dir, 'two', 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.same(
    log.map((s) => s.ranks),
    [2, 2],
  )
})
