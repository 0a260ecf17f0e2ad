// Where work runs: the one device policy of train(), SentenceEncoder and the CLI.
//   'cpu'  always.
//   'cuda' needs the CUDA kernels compiled in, a usable device, and kernels for every op the work
//          runs (the loss and dropout kernels have them; the encoder's ops may not): otherwise an Error
//          saying which of these is missing.
//   'auto' CUDA when all of that holds, else the CPU with a note saying why.
import { addon, type CudaStatus } from './native.js'
import type { Device } from './tensor.js'

export type DeviceRequest = 'auto' | Device
export const DEVICE_REQUESTS: readonly DeviceRequest[] = ['auto', 'cpu', 'cuda']

export interface DevicePolicy {
  /** Prefixes errors: 'train', 'SentenceEncoder'. */
  who: string
  /** Work that needs more than the loss kernels on CUDA, and the check that it can run there. */
  needs?: {
    /** Named in notes: 'the encoder'. */
    what: string
    /** null when the work runs on CUDA, else why not (called only when a CUDA device is available). */
    cudaBlocker(): string | null
  }
}

export interface DeviceChoice {
  device: Device
  /** Why 'auto' chose the CPU, when it did. */
  note?: string
  /** 'auto' chose the CPU although a CUDA device is available (the work cannot run there). */
  cudaUnused?: boolean
}

/**
 * Resolves a device request under `policy`; throws when 'cuda' is requested and cannot be used.
 * `cuda` is the addon's status (passed in by callers that load the addon themselves).
 */
export function resolveDevice(request: DeviceRequest, policy: DevicePolicy, cuda: CudaStatus = addon.cudaStatus()): DeviceChoice {
  if (request === 'cpu') return { device: 'cpu' }
  if (request !== 'auto' && request !== 'cuda')
    throw new TypeError(`${policy.who}: device must be auto, cpu or cuda (got ${String(request)})`)
  if (!cuda.available) {
    const reason = cuda.reason ?? 'unknown reason'
    if (request === 'cuda') throw new Error(`${policy.who}: device 'cuda' requested but CUDA is unavailable (${reason})`)
    return { device: 'cpu', note: `CUDA unavailable (${reason})` }
  }
  const blocker = policy.needs?.cudaBlocker() ?? null
  if (blocker === null) return { device: 'cuda' }
  if (request === 'cuda') throw new Error(`${policy.who}: device 'cuda' cannot run this model: ${blocker}`)
  return { device: 'cpu', note: `CUDA cannot run ${policy.needs!.what} (${blocker}); using the CPU`, cudaUnused: true }
}
