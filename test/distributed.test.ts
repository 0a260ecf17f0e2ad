// Data-parallel training (issue 13): `mpirun -np R simcsepp train` computes the steps of one process at
// the same global batch and seed (weights equal up to summation order), rank 0 alone writes the output,
// each step hands the collectives V·N·H·4 + 4·P bytes, a job whose rank is killed ends, and its
// checkpoint resumes on 2 ranks and on 1.
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, cpSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readSafetensors } from '../lib/safetensors.js'
import { assignGpu, detectLaunch, disableUcxMemoryHooks, localRank, rankSlice, shareCpuThreads } from '../lib/distributed/launch.js'
import { compareWeights } from './helpers/compare-weights.js'
import { cli, microModel, needsCli, runCli, tempDir, writeSentences } from './helpers/train-corpus.js'
import { TEXT_OBJECTIVES } from '../lib/train/objective.js'
import { mpiEnv, mpirun, mpirunArgs, needsMpirun, openMpi } from './helpers/mpirun.js'

const dir = tempDir('simcsepp-dist-')
const data = writeSentences(join(dir, 'data.txt'), 200)
const lr = 3e-5
// Weights after 3 AdamW steps on R ranks against one process, max |difference| over max |w| per tensor. The ranks
// sum the gradients in another order, a rounding difference of ~1e-7 of the largest gradient (the one-step test
// below). AdamW divides each element's first moment by its root mean square, so an element whose gradient is near
// its rounding noise at some step moves by a visibly different fraction of lr: measured up to 1.01e-5 (an
// element of layer 1's output weights updated by -2.18e-5 against -2.27e-5, of at most 6e-5 in 3 steps). A rank's
// gradients missing from the sum change updates by up to lr per step: ~4e-4 of max |w| (8e-2).
const weightTolerance = 2e-5
const base = (out: string, objective: string, extra: string[] = []) => [
  'train',
  ...['--config', 'tiny', '--data', data, '--objective', objective, '--steps', '3', '--batch-size', '12'],
  ...['--max-len', '12', '--eval-every', '0', '--save-every', '1', '--seed', '3', '--lr', String(lr), '--out', out, ...extra],
]
/** args with the value of `flag` replaced. */
const setFlag = (args: string[], flag: string, value: string) => args.map((a, i) => (args[i - 1] === flag ? value : a))
const steps = (out: string) =>
  readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === 'step')
const paramCount = async (out: string) =>
  (await readSafetensors(join(out, 'run', 'checkpoint', 'state.safetensors'))).get('params')!.shape[0]

t.test("UCX's memory hooks are off unless the user chose", async (t) => {
  const env: NodeJS.ProcessEnv = {}
  t.equal(disableUcxMemoryHooks(env), 'no')
  t.equal(env.UCX_MEM_EVENTS, 'no')
  const chosen: NodeJS.ProcessEnv = { UCX_MEM_EVENTS: 'yes' }
  t.equal(disableUcxMemoryHooks(chosen), 'yes', "the user's setting is kept")
})

t.test('slices, launch detection and GPU assignment', async (t) => {
  t.same(
    [0, 1, 2].map((r) => rankSlice(8, 3, r)),
    [
      [0, 2],
      [2, 5],
      [5, 8],
    ],
    '8 sentences over 3 ranks',
  )
  t.same(
    [0, 1].map((r) => rankSlice(12, 2, r)),
    [
      [0, 6],
      [6, 12],
    ],
  )
  t.same(detectLaunch({ OMPI_COMM_WORLD_SIZE: '4' }), { variable: 'OMPI_COMM_WORLD_SIZE=4', size: 4 })
  t.same(detectLaunch({ PMI_SIZE: '2' }), { variable: 'PMI_SIZE=2', size: 2 })
  t.same(detectLaunch({ PMIX_RANK: '0' }), { variable: 'PMIX_RANK=0', size: null })
  t.equal(detectLaunch({}), null)
  t.equal(localRank({ OMPI_COMM_WORLD_LOCAL_RANK: '3' }), 3)
  t.equal(localRank({ MPI_LOCALRANKID: '1' }), 1)
  const env: NodeJS.ProcessEnv = {}
  t.equal(assignGpu(2, env), '2')
  t.equal(env.CUDA_VISIBLE_DEVICES, '2', 'no list given: the local rank is the device')
  const given: NodeJS.ProcessEnv = { CUDA_VISIBLE_DEVICES: '4,5,6,7' }
  t.equal(assignGpu(1, given), '5', "the local rank's entry of the user's list")
  const four: NodeJS.ProcessEnv = { OMPI_COMM_WORLD_LOCAL_SIZE: '4' }
  t.equal(shareCpuThreads(16, four), 4)
  t.equal(four.SIMCSEPP_NUM_THREADS, '4', '16 cores over 4 local ranks')
  t.equal(shareCpuThreads(2, { MPI_LOCALNRANKS: '3' }), 1, 'at least one thread')
  t.equal(shareCpuThreads(16, { OMPI_COMM_WORLD_LOCAL_SIZE: '4', SIMCSEPP_NUM_THREADS: '16' }), 16, "the user's setting stands")
})

t.test('--distributed without a loadable MPI: an error saying what was searched', needsCli, async (t) => {
  const out = join(dir, 'no-mpi')
  const r = spawnSync(process.execPath, [cli, ...base(out, 'simcse', ['--distributed'])], {
    encoding: 'utf8',
    env: { ...process.env, SIMCSEPP_MPI_LIB: '/nonexistent/libmpi.so' },
  })
  t.equal(r.status, 1)
  t.match(
    r.stderr,
    /--distributed was given but MPI could not be loaded: cannot load MPI \(tried \/nonexistent\/libmpi\.so: [^)]+\): install Open MPI or MPICH, or set SIMCSEPP_MPI_LIB/,
  )
  t.notOk(existsSync(join(out, 'run', 'train.jsonl')), 'nothing written')
  t.equal(runCli(['train', '--data', data, '--distributed', '--help']).status, 0)
})

t.test('mpirun -np 2 and -np 3 end with the weights of one process (simcse, simcse++)', { ...needsCli, ...needsMpirun }, async (t) => {
  for (const objective of ['simcse', 'simcse++']) {
    const V = objective === 'simcse' ? 2 : 3
    const one = join(dir, `${objective}-1`)
    const r1 = runCli(base(one, objective))
    t.equal(r1.status, 0, r1.stderr)
    for (const ranks of objective === 'simcse++' ? [2, 3] : [2]) {
      const out = join(dir, `${objective}-${ranks}`)
      const r = mpirun(ranks, base(out, objective))
      t.equal(r.status, 0, r.stderr)
      const { worst, keyBias, worstName } = await compareWeights(out, one)
      t.ok(worst < weightTolerance, `${objective}, ${ranks} ranks: weights within ${worst.toExponential(2)} relative (worst: ${worstName})`)
      t.ok(keyBias <= 2 * 3 * lr, `${objective}, ${ranks} ranks: key bias within ${keyBias.toExponential(2)}`)
      // Rank 0 alone wrote: one log line per step, one summary on stderr.
      const log = steps(out)
      t.same(
        log.map((s) => s.step),
        [1, 2, 3],
        'one log entry per step',
      )
      t.equal((r.stderr.match(/model and tokenizer in /g) ?? []).length, 1, 'one summary')
      t.equal(JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')).ranks, ranks)
      const P = await paramCount(out)
      const H = 128,
        N = 12
      t.same(
        log.map((s) => s.communicatedBytes),
        [1, 2, 3].map(() => 4 * (V * N * H + P)),
        `bytes per step: 4·(V·N·H + P) = ${4 * (V * N * H + P)}`,
      )
      t.ok(
        log.every((s) => s.ranks === ranks && s.communicationSeconds >= 0),
        'ranks and communication time logged',
      )
      const losses1 = steps(one).map((s) => s.loss)
      t.ok(
        log.every((s, i) => Math.abs(s.loss - losses1[i]) <= 1e-5 * Math.abs(losses1[i])),
        `losses ${log.map((s) => s.loss.toFixed(6)).join(', ')} equal one process's`,
      )
    }
  }
})

t.test(
  'one step on 2 and 3 ranks: the gradients of one process (every objective, n-tuples, scored pairs)',
  { ...needsCli, ...needsMpirun },
  async (t) => {
    const model = await microModel(dir, 'micro')
    const helper = join(process.cwd(), 'test', 'helpers', 'dist-grads.mjs')
    const grads = (file: string) => new Float32Array(readFileSync(file).buffer.slice(0))
    // Supervised examples with 3 hard negatives each (5 views): the ranks gather every view's vectors.
    const lines = readFileSync(data, 'utf8').split('\n').filter(Boolean)
    const tuples = join(dir, 'tuples.jsonl')
    const keys = ['anchor', 'positive', 'negative_1', 'negative_2', 'negative_3']
    writeFileSync(
      tuples,
      lines
        .slice(0, 30)
        .map((_, i) => JSON.stringify(Object.fromEntries(keys.map((k, c) => [k, lines[i + 30 * c]]))))
        .join('\n'),
    )
    // Scored pairs (cosent): every rank computes the loss over the whole batch's scores.
    const scored = join(dir, 'scored.jsonl')
    writeFileSync(
      scored,
      lines
        .slice(0, 30)
        .map((a, i) => JSON.stringify({ anchor: a, positive: lines[i + 30], score: i % 6 }))
        .join('\n'),
    )
    const cases = [
      ...TEXT_OBJECTIVES.map((objective) => ({ objective, file: data, name: objective })),
      { objective: 'simcse', file: tuples, name: 'n-tuples' },
      { objective: 'cosent', file: scored, name: 'cosent' },
    ]
    for (const { objective, file: dataFile, name } of cases) {
      const args = (file: string) => [model, dataFile, objective, '24', file]
      const one = join(dir, `grads-${name}-1.f32`)
      const r1 = spawnSync(process.execPath, [helper, ...args(one)], { encoding: 'utf8' })
      t.equal(r1.status, 0, r1.stderr)
      const g1 = grads(one)
      let scale = 0
      for (const x of g1) scale = Math.max(scale, Math.abs(x))
      for (const ranks of [2, 3]) {
        const file = join(dir, `grads-${name}-${ranks}.f32`)
        const r = spawnSync('mpirun', mpirunArgs(ranks, args(file), helper), { encoding: 'utf8', env: mpiEnv() })
        t.equal(r.status, 0, r.stderr)
        const g = grads(file)
        let worst = 0
        for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - g1[i]))
        t.equal(g.length, g1.length)
        t.ok(worst / scale < 1e-5, `${name}, ${ranks} ranks: gradients within ${(worst / scale).toExponential(2)} of the largest`)
      }
    }
  },
)

const mpich = spawnSync('mpiexec.mpich', ['--version'], { encoding: 'utf8' }).status === 0
t.test(
  'MPICH (its ABI of integer handles): 2 ranks end with the weights of one process',
  { ...needsCli, skip: mpich ? false : 'mpiexec.mpich not installed' },
  async (t) => {
    const one = join(dir, 'simcse-1')
    if (!existsSync(join(one, 'model.safetensors'))) t.equal(runCli(base(one, 'simcse')).status, 0)
    const out = join(dir, 'simcse-mpich')
    const r = spawnSync('mpiexec.mpich', ['-n', '2', process.execPath, cli, ...base(out, 'simcse')], { encoding: 'utf8', env: mpiEnv() })
    t.equal(r.status, 0, r.stderr)
    t.match(r.stderr, /data-parallel over 2 ranks on MPICH/)
    const { worst } = await compareWeights(out, one)
    t.ok(worst < weightTolerance, `weights within ${worst.toExponential(2)} relative`)
    // Open MPI's library under MPICH's launcher would start each process as a world of one: refused.
    const wrong = spawnSync('mpiexec.mpich', ['-n', '2', process.execPath, cli, ...base(join(dir, 'wrong-mpi'), 'simcse')], {
      encoding: 'utf8',
      env: { ...mpiEnv(), SIMCSEPP_MPI_LIB: 'libmpi.so.40' },
    })
    t.not(wrong.status, 0)
    t.match(
      wrong.stderr,
      /started by an MPI launcher \(PMI_SIZE=2\) for 2 ranks but .* sees 1: it is not the launcher's MPI; set SIMCSEPP_MPI_LIB/,
    )
  },
)

t.test(
  "an epoch's last batch of 2 sentences on 3 ranks (one rank idle): one process's weights",
  { ...needsCli, ...needsMpirun },
  async (t) => {
    const short = writeSentences(join(dir, 'data-14.txt'), 14)
    const args = (out: string) => setFlag(setFlag(base(out, 'simcse'), '--data', short), '--steps', '2')
    const one = join(dir, 'short-1'),
      three = join(dir, 'short-3')
    t.equal(runCli(args(one)).status, 0)
    const r = mpirun(3, args(three))
    t.equal(r.status, 0, r.stderr)
    t.same(
      steps(three).map((s) => s.batchSize),
      [12, 2],
    )
    const { worst } = await compareWeights(three, one)
    t.ok(worst < weightTolerance, `weights within ${worst.toExponential(2)} relative`)
  },
)

t.test('2 ranks in micro-batches of 4 rows: the weights of one whole-batch process', { ...needsCli, ...needsMpirun }, async (t) => {
  const one = join(dir, 'simcse++-1')
  if (!existsSync(join(one, 'model.safetensors'))) t.equal(runCli(base(one, 'simcse++')).status, 0)
  const out = join(dir, 'simcse++-2-m4')
  const r = mpirun(2, base(out, 'simcse++', ['--micro-batch', '4']))
  t.equal(r.status, 0, r.stderr)
  // Each rank's 6 sentences in 3 views, 18 rows, in passes of 4 (passes 2 and 4 span two views) and 2.
  t.same(
    steps(out).map((s) => s.microBatches),
    [5, 5, 5],
  )
  const { worst, keyBias } = await compareWeights(out, one)
  t.ok(worst < weightTolerance, `weights within ${worst.toExponential(2)} relative`)
  t.ok(keyBias <= 2 * 3 * lr, `key bias within ${keyBias.toExponential(2)}`)
})

/** The flags `args(out)` run by one process into dir/name-1 and by 2 ranks into dir/name-2: those directories. */
function oneAndTwoRanks(t: Test, name: string, args: (out: string) => string[]): [string, string] {
  const [one, two] = [join(dir, `${name}-1`), join(dir, `${name}-2`)]
  const r1 = runCli(args(one))
  t.equal(r1.status, 0, r1.stderr)
  const r = mpirun(2, args(two))
  t.equal(r.status, 0, r.stderr)
  return [one, two]
}

t.test(
  "2 ranks on two datasets (simcse++ sentences, cosent scored pairs): one process's schedule and weights",
  { ...needsCli, ...needsMpirun },
  async (t) => {
    const lines = readFileSync(data, 'utf8').split('\n').filter(Boolean)
    const scored = join(dir, 'multi-scored.csv')
    writeFileSync(
      scored,
      ['sentence1,sentence2,score', ...lines.slice(0, 30).map((a, i) => `${a},${lines[i + 30]},${i % 6}`)].join('\n') + '\n',
    )
    const args = (out: string) => [
      ...setFlag(base(out, 'simcse++'), '--steps', '4'),
      ...['--data', scored, '--objective', 'cosent', '--dataset-sampler', 'round-robin'],
    ]
    const [one, two] = oneAndTwoRanks(t, 'multi', args)
    t.same(
      steps(two).map((s) => [s.dataset, Object.keys(s.parts).join()]),
      steps(one).map((s) => [s.dataset, Object.keys(s.parts).join()]),
      'the same dataset at each step',
    )
    t.same(
      steps(two).map((s) => s.dataset),
      [0, 1, 0, 1],
    )
    const { worst, keyBias } = await compareWeights(two, one)
    t.ok(worst < weightTolerance, `weights within ${worst.toExponential(2)} relative`)
    t.ok(keyBias <= 2 * 4 * lr, `key bias within ${keyBias.toExponential(2)}`)
  },
)

t.test("2 ranks distilling a teacher's vectors: one process's weights", { ...needsCli, ...needsMpirun }, async (t) => {
  // The teacher: a tiny model of the students' width (128), trained here for a step.
  const teacher = join(dir, 'distill-teacher')
  const r0 = runCli(setFlag(base(teacher, 'simcse++'), '--steps', '1'))
  t.equal(r0.status, 0, r0.stderr)
  const args = (out: string) => [...setFlag(base(out, 'distill'), '--steps', '3'), '--teacher', teacher]
  const [one, two] = oneAndTwoRanks(t, 'distill', args)
  const losses1 = steps(one).map((s) => s.loss)
  t.ok(
    steps(two).every((s, i) => Math.abs(s.loss - losses1[i]) <= 1e-5 * losses1[i]),
    `losses ${steps(two)
      .map((s) => s.loss.toFixed(6))
      .join(', ')} equal one process's`,
  )
  const { worst, keyBias } = await compareWeights(two, one)
  t.ok(worst < weightTolerance, `weights within ${worst.toExponential(2)} relative`)
  t.ok(keyBias <= 2 * 3 * lr, `key bias within ${keyBias.toExponential(2)}`)
})

/** The pids of mpirun's rank processes (its children), by rank. */
function rankPids(mpirunPid: number): Map<number, number> {
  const ranks = new Map<number, number>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const ppid = Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1])
      if (ppid !== mpirunPid) continue
      const rank = /(?:^|\0)OMPI_COMM_WORLD_RANK=(\d+)/.exec(readFileSync(`/proc/${d}/environ`, 'utf8'))
      if (rank) ranks.set(Number(rank[1]), Number(d))
    } catch {
      // the process ended meanwhile
    }
  }
  return ranks
}

const checkpointStep = (out: string) => {
  try {
    return JSON.parse(readFileSync(join(out, 'run', 'checkpoint', 'state.json'), 'utf8')).step as number
  } catch {
    return 0
  }
}

const needsOpenMpi = { skip: needsMpirun.skip || (openMpi ? false : 'finds the ranks by their Open MPI variables') }
t.test('SIGKILL of one rank ends the job; its checkpoint resumes on 2 ranks and on 1', { ...needsCli, ...needsOpenMpi }, async (t) => {
  const out = join(dir, 'killed')
  const total = 80
  const args = setFlag(setFlag(base(out, 'simcse++'), '--steps', String(total)), '--batch-size', '48')
  const job = spawn('mpirun', mpirunArgs(2, args), { env: mpiEnv(), stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  job.stderr.on('data', (d) => (stderr += d))
  const ended = new Promise<number | null>((resolve) => job.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))))
  // Wait (event-driven, no clock) for the second checkpoint, then kill rank 1.
  while (checkpointStep(out) < 2) await new Promise((r) => setTimeout(r, 5))
  const pids = rankPids(job.pid!)
  t.equal(pids.size, 2, 'both ranks found')
  process.kill(pids.get(1)!, 'SIGKILL')
  // The bound for "the job stops" (mpirun and every rank gone): mpirun ends the other rank as soon as it
  // sees one die, ~1 s here. Past the bound the test kills the job itself and fails.
  const TIMEOUT_S = 60
  const deadline = Date.now() + TIMEOUT_S * 1000
  let hung = false
  const timer = setTimeout(() => ((hung = true), job.kill('SIGKILL')), TIMEOUT_S * 1000)
  const code = await ended
  clearTimeout(timer)
  const alive = (p: number) => existsSync(`/proc/${p}/stat`) && !/ Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8'))
  while ([...pids.values()].some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.notOk(hung, `mpirun ended within ${TIMEOUT_S} s`)
  t.not(code, 0, 'the job failed')
  t.match(stderr, /exited on signal 9|killed|aborted/i, 'mpirun reports the dead rank')
  t.same([...pids.values()].filter(alive), [], `no rank left within ${TIMEOUT_S} s`)
  const at = checkpointStep(out)
  t.ok(at >= 2 && at < total, `checkpoint at step ${at}`)

  // The same checkpoint, resumed with 2 ranks and with 1.
  const again = join(dir, 'killed-1rank')
  cpSync(out, again, { recursive: true })
  const resume = (o: string) => setFlag(args, '--out', o).concat(['--resume', o])
  const r2 = mpirun(2, resume(out))
  t.equal(r2.status, 0, r2.stderr)
  t.match(r2.stderr, new RegExp(`resuming from .* at step ${at} of ${total}`))
  const r1 = runCli(resume(again))
  t.equal(r1.status, 0, r1.stderr)
  for (const o of [out, again])
    t.same(
      steps(o).map((s) => s.step),
      Array.from({ length: total }, (_, i) => i + 1),
      `${o}: steps 1..${total}, once each`,
    )
  const { worst } = await compareWeights(out, again)
  t.ok(worst < 1e-4, `2-rank and 1-rank resumes agree: ${worst.toExponential(2)} relative`)
})

t.test('Ctrl-C to mpirun: every rank stops after the same step, with a checkpoint', { ...needsCli, ...needsOpenMpi }, async (t) => {
  const out = join(dir, 'interrupted')
  const args = setFlag(setFlag(setFlag(base(out, 'simcse'), '--steps', '500'), '--batch-size', '48'), '--save-every', '1000')
  const job = spawn('mpirun', mpirunArgs(2, args), { env: mpiEnv(), stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  job.stderr.on('data', (d) => (stderr += d))
  const ended = new Promise((resolve) => job.on('exit', resolve))
  const logged = () => (existsSync(join(out, 'run', 'train.jsonl')) ? steps(out).length : 0)
  while (logged() < 2) await new Promise((r) => setTimeout(r, 5))
  job.kill('SIGINT') // mpirun passes it on to the ranks as SIGTERM
  await ended
  const at = checkpointStep(out)
  t.match(stderr, new RegExp(`stopped after step ${at} of 500; checkpoint written`))
  t.equal(logged(), at, 'the log ends at the checkpoint')
  t.notMatch(stderr, /MPI_ABORT/, 'ended without MPI_Abort: the ranks agreed')
})

t.test("an error on rank 0 ends every rank (MPI_Abort), with rank 0's message", { ...needsCli, ...needsMpirun }, async (t) => {
  const out = join(dir, 'simcse-2') // holds the run of an earlier test
  const r = mpirun(2, base(out, 'simcse'))
  t.not(r.status, 0)
  t.match(r.stderr, /simcsepp \(rank 0 of 2\): .*simcse-2 already holds a training run/)
})

t.test('bench dist: one process and 2 ranks, step time split, bytes per step', { ...needsCli, ...needsMpirun }, async (t) => {
  const r = spawnSync(process.execPath, [cli, 'bench', 'dist', '--json', '--steps', '1', '--batch-size', '8', '--seq-len', '8'], {
    encoding: 'utf8',
    env: mpiEnv(),
  })
  t.equal(r.status, 0, r.stderr)
  const { rows } = JSON.parse(r.stdout)
  t.same(
    rows.map((x: { ranks: number }) => x.ranks),
    [1, 2],
  )
  const [one, two] = rows
  t.equal(one.payloadBytes, 0, 'one process communicates nothing')
  const gathered = 4 * 3 * 8 * 128 // SimCSE++'s 3 views of 8 tiny (H = 128) vectors
  t.ok(two.payloadBytes > gathered && (two.payloadBytes - gathered) % 4 === 0, `payload ${two.payloadBytes} = z + 4·P`)
  t.equal(two.ringBytesPerRank, gathered / 2 + (two.payloadBytes - gathered), 'ring: half of z received, 2·½·4P reduced')
  t.ok(Math.abs(two.computeMs + two.communicationMs - two.stepMs) < 1e-9, 'compute + communication = step')
})
