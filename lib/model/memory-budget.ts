// How much memory a pass of the encoder may take on a device, and the largest pass that fits: the one
// rule behind --micro-batch auto in training and the passes SentenceEncoder splits a batch into.
import { totalmem } from 'node:os'
import { addon, type CudaStatus } from '../native.js'
import type { Device } from '../tensor.js'
import { gib } from './size-check.js'

/** The memory a step on a device may fill, how messages name it, and the --micro-batch auto budget. */
export interface StepMemory {
  bytes: number
  /** The memory in words: "this machine has 31.2 GiB", "the GPU has 120 GiB free". */
  has: string
  /** Activation bytes above which --micro-batch auto splits a step. */
  autoBudget: number
}

/**
 * On the CPU: the machine's memory, and an auto budget of min(4 GiB, a quarter of it) (passes beyond a few
 * thousand rows are not faster there: the products are already large; the rest of the memory is the
 * user's). On CUDA: the device memory free now (the model is loaded by then), and an auto budget of 3/4 of
 * it (larger passes keep the GPU busier, and a GPU is rarely shared with other work; the quarter left is
 * for dL/dz, the loss workspace and the library's own buffers).
 */
export function stepMemory(
  device: Device,
  cuda: CudaStatus = device === 'cuda' ? addon.cudaStatus() : { compiled: false, available: false },
): StepMemory {
  if (device === 'cuda' && cuda.memory && !cuda.emulated) {
    const free = cuda.memory.freeBytes
    return { bytes: free, has: `the GPU has ${gib(free)} free`, autoBudget: 0.75 * free }
  }
  const ram = totalmem()
  return { bytes: ram, has: `this machine has ${gib(ram)}`, autoBudget: autoMicroBatchBudget(ram) }
}

/** The CPU's budget for one pass's activations: min(4 GiB, a quarter of the machine's memory). */
export function autoMicroBatchBudget(memoryBytes = totalmem()): number {
  return Math.min(4 * 2 ** 30, memoryBytes / 4)
}

/** The largest m in [1, rows] with bytesFor(m) <= budget (1 when even one row exceeds it); bytesFor grows with m. */
export function largestPassWithin(bytesFor: (m: number) => number, rows: number, budget: number): number {
  let lo = 1,
    hi = rows
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    if (bytesFor(mid) <= budget) lo = mid
    else hi = mid - 1
  }
  return lo
}
