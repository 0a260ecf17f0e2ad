// Data-parallel training with CUDA tensors (issue 13): under mpirun the ranks' vectors and gradients on
// the 'cuda' device travel through NCCL on a GPU, or through MPI on host copies where NCCL cannot be used.
// Either way 2 ranks end with the weights of one CUDA process. CI runs this file on the host emulator
// (npm run test:emulated) twice over: through MPI on host copies, and through native/distributed/nccl.cpp
// against the stand-in NCCL (emulator/fake_nccl.cpp, carried over MPI), which also shows that a library
// that reduces nothing is caught. Through NCCL the ranks' steps are CUDA graphs holding the collectives.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { cudaStatus } from '../lib/index.js'
import { compareWeights } from './helpers/compare-weights.js'
import { microModel, needsCli, runCli, tempDir, writeSentences } from './helpers/train-corpus.js'
import { mpiEnv, mpirun, mpirunArgs, needsMpirun, openMpi } from './helpers/mpirun.js'

const status = cudaStatus()
const skip = needsMpirun.skip || needsCli.skip || (status.available ? false : `CUDA unavailable (${status.reason})`)
const fakeNccl = process.env.SIMCSEPP_ADDON ? join(dirname(process.env.SIMCSEPP_ADDON), 'libnccl-emulated.so') : ''
// The stand-in reaches MPI through Open MPI's symbols: under another MPI the NCCL tests are skipped.
const skipFake =
  skip ||
  (!status.emulated || !existsSync(fakeNccl)
    ? 'the stand-in NCCL is for the emulated build (SIMCSEPP_ADDON)'
    : openMpi
      ? false
      : 'the stand-in NCCL is carried over Open MPI (mpirun is not Open MPI)')
const lr = 3e-5

/** One CUDA process and 2 ranks (with `env`) train `steps` steps from the same model; the 2-rank run's result. */
async function twoRanksAgainstOne(dir: string, env: NodeJS.ProcessEnv = {}, steps = 2) {
  const model = await microModel(dir, 'micro')
  const data = writeSentences(join(dir, 'data.txt'), 30)
  const args = (out: string) =>
    [
      'train',
      '--model',
      model,
      '--data',
      data,
      '--steps',
      String(steps),
      '--batch-size',
      '8',
      '--max-len',
      '7',
      '--eval-every',
      '0',
    ].concat(['--save-every', '0', '--seed', '3', '--lr', String(lr), '--device', 'cuda', '--precision', 'fp32', '--out', out])
  const one = runCli(args(join(dir, 'one')))
  const two = mpirun(2, args(join(dir, 'two')), env)
  const weights = one.status === 0 && two.status === 0 ? await compareWeights(join(dir, 'two'), join(dir, 'one')) : undefined
  return { one, two, weights }
}

t.test('simcse++ on 2 ranks with CUDA tensors: the weights of one CUDA process (fp32)', { skip }, async (t) => {
  const dir = tempDir('simcsepp-cuda-dist-')
  const { one, two, weights } = await twoRanksAgainstOne(dir)
  t.equal(one.status, 0, one.stderr)
  t.equal(two.status, 0, two.stderr)
  t.match(
    two.stderr,
    status.emulated
      ? /CUDA tensors travel through MPI on host copies \(the emulated CUDA device is host memory\)/
      : /CUDA tensors travel through /,
  )
  if (!weights) return
  t.ok(weights.worst < 1e-5, `weights within ${weights.worst.toExponential(2)} relative (worst: ${weights.worstName})`)
  t.ok(weights.keyBias <= 2 * 2 * lr, `key bias within ${weights.keyBias.toExponential(2)}`)
  const log = readFileSync(join(dir, 'two', 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.same(
    log.map((s) => s.ranks),
    [2, 2],
  )
  // MPI's host copies cannot be part of a CUDA graph: every step runs eagerly.
  t.same(
    log.map((s) => s.cudaGraph),
    ['eager', 'eager'],
  )
})

/** The steps of a run's train.jsonl. */
function stepsOf(out: string): Record<string, unknown>[] {
  return readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((s) => s.type === 'step')
}

t.test('through nccl.cpp and the stand-in NCCL: the weights of one CUDA process', { skip: skipFake }, async (t) => {
  const dir = tempDir('simcsepp-cuda-nccl-')
  const counts = join(dir, 'collectives.txt')
  const { one, two, weights } = await twoRanksAgainstOne(dir, { SIMCSEPP_NCCL_LIB: fakeNccl, CUEMU_FAKE_NCCL_LOG: counts }, 3)
  t.equal(one.status, 0, one.stderr)
  t.equal(two.status, 0, two.stderr)
  t.match(two.stderr, /CUDA tensors travel through NCCL 2\.28\.5/, 'the stand-in carried them')
  t.notMatch(two.stderr, /stand-in NCCL:/, 'no call was refused')
  // Step 1 eager, step 2 captured (its collectives too), step 3 replayed, on the ranks as in one process.
  const steps = stepsOf(join(dir, 'two'))
  t.same(
    steps.map((s) => s.cudaGraph),
    ['eager', 'captured', 'replayed'],
    'the ranks replay their steps as CUDA graphs',
  )
  t.same(
    stepsOf(join(dir, 'one')).map((s) => s.cudaGraph),
    ['eager', 'captured', 'replayed'],
  )
  // A replay's collectives carry the bytes of the eager step's; their time is not measured apart.
  t.same(
    steps.map((s) => s.communicatedBytes),
    [0, 1, 2].map(() => steps[0].communicatedBytes),
  )
  t.same(
    steps.map((s) => typeof s.communicationSeconds),
    ['number', 'undefined', 'undefined'],
  )
  // Each rank's line at exit: rank, collectives, floats. Both ranks ran the same ones (the stand-in
  // compares every collective across the ranks), and the gradients of 2 steps went through them.
  const lines = readFileSync(counts, 'utf8').trim().split('\n').sort()
  const rows = lines.map((l) => l.split(' ').map(Number))
  t.same(
    rows.map((r) => r[0]),
    [0, 1],
    'one line per rank',
  )
  t.equal(rows[0][1], rows[1][1], 'the same number of collectives on both ranks')
  // 3 steps of 3 all-gathers (a group of 2 broadcasts each) and 1 all-reduce: the replays ran theirs.
  t.equal(rows[0][1], 3 * (3 * 2 + 1), `${rows[0][1]} collectives`)
  t.ok(rows[0][2] > 0, `${rows[0][2]} floats moved`)
  if (!weights) return
  t.ok(weights.worst < 1e-5, `weights within ${weights.worst.toExponential(2)} relative (worst: ${weights.worstName})`)
  t.ok(weights.keyBias <= 2 * 3 * lr, `key bias within ${weights.keyBias.toExponential(2)}`)
})

t.test('a stand-in NCCL that reduces nothing is caught by the comparison', { skip: skipFake }, async (t) => {
  const dir = tempDir('simcsepp-cuda-nccl-bug-')
  const { two, weights } = await twoRanksAgainstOne(dir, { SIMCSEPP_NCCL_LIB: fakeNccl, CUEMU_FAKE_NCCL_BUG: 'local' })
  t.equal(two.status, 0, two.stderr)
  t.ok(weights && weights.worst > 1e-3, `weights differ by ${weights?.worst.toExponential(2)} relative`)
})

t.test(
  'the collectives through nccl.cpp: exact sums and gathers; ranks out of step get an Error; graphs end with the group',
  { skip: skipFake },
  async (t) => {
    const dir = tempDir('simcsepp-cuda-nccl-ops-')
    const helper = join(process.cwd(), 'test', 'helpers', 'dist-cuda-collectives.mjs')
    const r = spawnSync('mpirun', mpirunArgs(2, [join(dir, 'seen')], helper), {
      encoding: 'utf8',
      env: { ...mpiEnv(), SIMCSEPP_NCCL_LIB: fakeNccl },
    })
    t.equal(r.status, 0, r.stderr)
    for (const rank of [0, 1]) {
      const seen = JSON.parse(readFileSync(join(dir, `seen.${rank}.json`), 'utf8'))
      t.equal(seen.cudaPath, 'NCCL 2.28.5', `rank ${rank}: through the stand-in`)
      t.same(seen.sum, [3.25, 6.25, 9.25, 12.25, 15.25], `rank ${rank}: the sum`)
      t.same(
        seen.gathers,
        [
          [0, 10, 20, 1, 11],
          [1, 11, 21, 31],
          [0, 10],
        ],
        `rank ${rank}: the gathers`,
      )
      t.match(seen.mismatch, /^ncclAllReduce: invalid usage/, `rank ${rank}: the mismatch is an Error`)
      t.same(seen.after, [1, 2], `rank ${rank}: the communicator still works`)
      t.same(seen.replayed, [3, 4], `rank ${rank}: a step graph's all-reduce replayed`)
      t.equal(
        seen.afterFinalize,
        'step graph 0 holds NCCL collectives of a process group that has since ended (distFinalize)',
        `rank ${rank}: and refused after distFinalize`,
      )
      t.same(seen.deviceAfter, [5], `rank ${rank}: the device still usable`)
    }
    t.match(r.stderr, /stand-in NCCL: ranks called different collectives/)
  },
)
