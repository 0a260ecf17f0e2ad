// A training run on emulated (or real) CUDA in fp32 against the same run on the CPU: step graphs replayed, every
// step's loss within 1e-4 relative, the final weights within 1e-4 relative (the attention key biases, whose exact
// gradient is zero, within 2·steps·lr absolute: AdamW turns their rounding noise into updates of up to lr).
import type { Test } from 'tap'
import { join } from 'node:path'
import { train, type TrainOptions } from '../../lib/train/train.js'
import type { StepInfo } from '../../lib/train/events.js'
import { compareWeights } from './compare-weights.js'

/** Runs `run` into dir/name-cpu and dir/name-cuda and checks them as above. */
export async function checkCudaMatchesCpu(
  t: Test,
  run: Omit<TrainOptions, 'out'> & { lr: number },
  dir: string,
  name: string,
): Promise<void> {
  const cpu: StepInfo[] = []
  const cuda: StepInfo[] = []
  await train({ ...run, device: 'cpu', out: join(dir, `${name}-cpu`) }, { onStep: (x) => void cpu.push(x) })
  await train({ ...run, device: 'cuda', precision: 'fp32', out: join(dir, `${name}-cuda`) }, { onStep: (x) => void cuda.push(x) })
  t.ok(
    cuda.some((x) => x.cudaGraph === 'replayed'),
    `graphs: ${cuda.map((x) => x.cudaGraph).join(', ')}`,
  )
  for (const [i, x] of cuda.entries())
    t.ok(
      Math.abs(x.loss - cpu[i].loss) < 1e-4 * Math.abs(cpu[i].loss) && x.dataset === cpu[i].dataset,
      `step ${i + 1} (${x.dataset !== undefined ? `dataset ${x.dataset}, ` : ''}${x.cudaGraph}): ${x.loss} on CUDA, ${cpu[i].loss} on the CPU`,
    )
  const { worst, keyBias } = await compareWeights(join(dir, `${name}-cuda`), join(dir, `${name}-cpu`))
  t.ok(worst < 1e-4, `weights within ${worst.toExponential(2)} relative`)
  t.ok(keyBias <= 2 * cuda.length * run.lr, `key bias within ${keyBias.toExponential(2)}`)
}
