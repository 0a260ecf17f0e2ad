// `simcsepp bench dist`: the data-parallel training step (lib/distributed/) on R ranks of this machine
// against one process, at the same global batch: time per step split into compute and communication,
// the bytes each step hands to the collectives, and sentences/s. Each configuration runs in its own
// process(es) (`bench dist --worker`, under mpirun for R > 1) over the real train(), the first step left
// out as warm-up; the CPU threads are shared between the ranks, so on one machine the ranks compete for
// the same cores and the table measures the overhead, not the scaling of separate devices.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { train } from '../train/train.js'
import type { StepInfo } from '../train/events.js'
import { namedConfig, type NamedConfig } from '../model/config.js'
import { median } from './median.js'

export interface DistBenchOptions {
  size: NamedConfig
  batchSize: number
  seqLen: number
  /** Timed steps (one more runs first, as warm-up). */
  steps: number
  ranks: number
  device: 'cpu' | 'cuda'
  log: (line: string) => void
}

export interface DistBenchRow {
  ranks: number
  stepMs: number
  computeMs: number
  communicationMs: number
  /** Tensor bytes handed to the collectives per step: 4·(V·N·H + P) (0 for one process). */
  payloadBytes: number
  /** What a ring algorithm moves per rank and step: (R−1)/R·V·N·H·4 gathered + 2(R−1)/R·4P reduced. */
  ringBytesPerRank: number
  sentencesPerSec: number
  /** Step time of one process over this one's. */
  speedup: number
  threadsPerRank: number
}

/** A worker's measurement (rank 0 prints it as JSON). */
interface WorkerResult {
  stepMs: number
  communicationMs: number
  payloadBytes: number
}

/** Words enough for sentences of exactly seqLen − 2 tokens after the WordPiece vocabulary is built. */
function writeSentences(path: string, count: number, words: number): void {
  const vocab = ['the', 'a', 'cat', 'dog', 'sees', 'likes', 'small', 'house', 'tree', 'bird', 'runs', 'near']
  const lines: string[] = []
  let x = 12345
  for (let i = 0; i < count; i++) {
    const s: string[] = []
    for (let w = 0; w < words; w++) {
      x = (x * 1103515245 + 12345) % 2 ** 31
      s.push(vocab[x % vocab.length])
    }
    lines.push(s.join(' '))
  }
  writeFileSync(path, lines.join('\n') + '\n')
}

/** `bench dist --worker DIR`: trains steps + 1 steps in DIR and prints rank 0's medians as JSON. */
export async function distWorker(dir: string, o: DistBenchOptions): Promise<void> {
  const infos: StepInfo[] = []
  const result = await train(
    {
      config: o.size,
      data: join(dir, 'data.txt'),
      out: join(dir, `out-${o.ranks}`),
      overwrite: true,
      steps: o.steps + 1,
      batchSize: o.batchSize,
      maxLen: o.seqLen,
      evalEvery: 0,
      saveEvery: 0,
      device: o.device,
      microBatch: 0,
    },
    { onStep: (s) => void infos.push(s) },
  )
  if (result.rank) return
  const timed = infos.slice(1)
  const stepMs = median(timed.map((s) => (1000 * s.batchSize) / s.sentencesPerSecond))
  const communicationMs = median(timed.map((s) => 1000 * (s.communicationSeconds ?? 0)))
  const payloadBytes = timed[0]?.communicatedBytes ?? 0
  process.stdout.write(JSON.stringify({ stepMs, communicationMs, payloadBytes } satisfies WorkerResult) + '\n')
}

/** One process, then `mpirun -np ranks`, each a `bench dist --worker` run of this CLI. */
export function benchDist(o: DistBenchOptions & { cli: string }): DistBenchRow[] {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-bench-dist-'))
  try {
    writeSentences(join(dir, 'data.txt'), o.batchSize * (o.steps + 1), Math.max(1, o.seqLen - 2))
    const cores = cpus().length
    const rows: DistBenchRow[] = []
    for (const ranks of [1, o.ranks]) {
      const threads = Math.max(1, Math.floor(cores / ranks))
      const args = [o.cli, 'bench', 'dist', '--worker', dir, '--ranks', String(ranks), '--model', o.size]
      args.push('--batch-size', String(o.batchSize), '--seq-len', String(o.seqLen), '--steps', String(o.steps), '--device', o.device)
      const env = {
        ...process.env,
        SIMCSEPP_NUM_THREADS: String(threads),
        OMPI_ALLOW_RUN_AS_ROOT: '1',
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
      }
      o.log(`${ranks} ${ranks === 1 ? 'process' : 'ranks'}, ${threads} CPU thread(s) each`)
      const oversubscribe = ranks > cores ? ['--oversubscribe'] : []
      const r =
        ranks === 1
          ? spawnSync(process.execPath, args, { encoding: 'utf8', env })
          : spawnSync('mpirun', ['-np', String(ranks), ...oversubscribe, '--bind-to', 'none', process.execPath, ...args], {
              encoding: 'utf8',
              env,
            })
      if (r.error) throw new Error(`bench dist: cannot run ${ranks === 1 ? 'node' : 'mpirun'}: ${r.error.message}`)
      const line = r.stdout.trim().split('\n').pop() ?? ''
      if (r.status !== 0 || !line.startsWith('{'))
        throw new Error(`bench dist: the ${ranks}-rank run failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
      const w = JSON.parse(line) as WorkerResult
      // The payload is the gathered z (3 views of SimCSE++: 3·N·H floats) and the P gradients reduced.
      const gathered = ranks === 1 ? 0 : 4 * 3 * o.batchSize * namedConfig(o.size, 1000).hiddenSize
      const frac = (ranks - 1) / ranks
      rows.push({
        ranks,
        stepMs: w.stepMs,
        computeMs: w.stepMs - w.communicationMs,
        communicationMs: w.communicationMs,
        payloadBytes: w.payloadBytes,
        ringBytesPerRank: frac * gathered + 2 * frac * (w.payloadBytes - gathered),
        sentencesPerSec: (1000 * o.batchSize) / w.stepMs,
        speedup: (rows[0]?.stepMs ?? w.stepMs) / w.stepMs,
        threadsPerRank: threads,
      })
    }
    return rows
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
