// The ranks of a data-parallel run and the collectives the training step needs, over the addon's
// run-time-loaded MPI (and NCCL for CUDA tensors): native/bind_dist.cpp. Time spent in collectives is
// accumulated here, so a step can report its communication apart from its compute.
import { addon } from '../native.js'
import { nativeOf, type Tensor } from '../tensor.js'
import { availableParallelism } from 'node:os'
import { assignGpu, detectLaunch, disableUcxMemoryHooks, localRank, shareCpuThreads } from './launch.js'

export class Communicator {
  /** Seconds spent in collectives since the last takeSeconds(). */
  private seconds = 0
  /** Every rank has passed the end of the run (finish()): exiting with any code may finalize MPI. */
  private finished = false

  private constructor(
    readonly rank: number,
    readonly size: number,
    /** "Open MPI v4.1.4 (libmpi.so.40)": what was loaded. */
    readonly engine: string,
  ) {}

  /** Loads and initialises MPI (once per process); throws with the libraries tried. */
  static init(): Communicator {
    const i = addon.distInit()
    const c = new Communicator(i.rank, i.size, `${i.version.split(',')[0].replace(/\s+/g, ' ') || i.flavour} (${i.library})`)
    // MPI_Finalize at a clean exit or after a run every rank ended together (an interrupted one exits with
    // 130); otherwise MPI_Abort, which takes the other ranks down instead of leaving them blocked in a
    // collective (Finalize would wait for them forever).
    process.once('exit', (code) => (code === 0 || c.finished ? addon.distFinalize() : addon.distAbort(code)))
    return c
  }

  private timed<T>(f: () => T): T {
    const t0 = performance.now()
    try {
      return f()
    } finally {
      this.seconds += (performance.now() - t0) / 1000
    }
  }

  /** t = the sum of t over the ranks. */
  allReduceSum(t: Tensor): void {
    this.timed(() => addon.distAllReduceSum(nativeOf(t, 't')))
  }

  /** Rank r's counts[r] elements at offset sum(counts[0..r)) of t, to every rank (in place). */
  allGather(t: Tensor, counts: number[]): void {
    this.timed(() => addon.distAllGather(nativeOf(t, 't'), counts))
  }

  /** True on every rank when it is true on any (e.g. one rank was asked to stop). */
  any(flag: boolean): boolean {
    return this.timed(() => addon.distMax(flag ? 1 : 0) > 0)
  }

  /** The largest of the ranks' x, on every rank. */
  max(x: number): number {
    return this.timed(() => addon.distMax(x))
  }

  barrier(): void {
    this.timed(() => addon.distBarrier())
  }

  /** Waits for every rank at the end of a run (completed or stopped by a signal). */
  finish(): void {
    this.barrier()
    this.finished = true
  }

  /** Reports `message` on stderr and ends the whole job (every rank) with MPI_Abort. */
  abort(message: string, code = 1): never {
    process.stderr.write(`simcsepp (rank ${this.rank} of ${this.size}): ${message}\n`)
    return addon.distAbort(code)
  }

  /** Seconds in collectives since the previous call. */
  takeSeconds(): number {
    const s = this.seconds
    this.seconds = 0
    return s
  }

  /** Tensor bytes handed to collectives so far (this rank's buffers: the payload, not the wire traffic). */
  get bytes(): number {
    return addon.distStats().bytes
  }

  /** How CUDA tensors travel (NCCL's version, or MPI on host copies), once the first one did. */
  get cudaPath(): string | undefined {
    return addon.distStats().cudaPath
  }
}

/**
 * The run's communicator: a Communicator when `request` is true, or when it is 'auto' and an MPI launcher
 * started this process with more than one rank; otherwise null (one process). Assigns this rank's GPU
 * and CPU threads first. A clear error when distributed training was asked for but MPI does not load.
 */
export function startDistributed(request: boolean | 'auto', env: NodeJS.ProcessEnv = process.env): Communicator | null {
  const launch = detectLaunch(env)
  if (request === false) return null
  if (request === 'auto' && !(launch && (launch.size === null || launch.size > 1))) return null
  const why = launch ? `this process was started by an MPI launcher (${launch.variable})` : '--distributed was given'
  // This rank's GPU and CPU threads are settled before MPI starts: a CUDA-aware MPI may initialise CUDA in
  // MPI_Init, after which CUDA_VISIBLE_DEVICES is no longer read.
  if (launch && launch.size !== 1) {
    assignGpu(localRank(env), env)
    shareCpuThreads(availableParallelism(), env)
  }
  disableUcxMemoryHooks(env)
  let comm: Communicator
  try {
    comm = Communicator.init()
  } catch (e) {
    throw new Error(`${why} but MPI could not be loaded: ${(e as Error).message}`)
  }
  // Another MPI than the launcher's starts every process as a world of its own.
  if (launch?.size && launch.size !== comm.size)
    throw new Error(
      `${why} for ${launch.size} ranks but ${comm.engine} sees ${comm.size}: it is not the launcher's MPI; set SIMCSEPP_MPI_LIB to the launcher's libmpi`,
    )
  return comm
}
