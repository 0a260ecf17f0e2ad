// Writes a safetensors file a chunk at a time, for tensors that live in native memory: each tensor's values
// are asked for 1 M elements at a time into one reused buffer and written at their place, so a checkpoint
// of bert-base with its AdamW moments (1.3 GB) needs 4 MB of JavaScript memory instead of three model-sized
// copies and a file-sized buffer (seconds of page faults each on the VMs this is developed on). The bytes are
// the same as writeSafetensors' for the same tensors, and the file is replaced as atomically.
import { open } from 'node:fs/promises'
import { encodeInto, planSafetensors, type WritableDtype, type WriteOptions } from './safetensors.js'
import type { Tensor } from './tensor.js'
import { replaceFileAtomic } from './util/atomic-write.js'
import { writeFully } from './util/write-fully.js'

/** Elements asked for per chunk (4 MB of fp32). */
const CHUNK_ELEMENTS = 1 << 20

/** A tensor to write whose values are fetched in chunks: `fill(values, at)` puts elements at .. at + values.length - 1 into `values`. */
export interface ChunkedTensor {
  shape: readonly number[]
  dtype?: WritableDtype
  fill(values: Float32Array, at: number): void
}

/** ChunkedTensor.fill for the elements of `source` from `offset` on (a tensor on any device, or host memory). */
export function chunksOf(source: Tensor | Float32Array, offset = 0): ChunkedTensor['fill'] {
  if (source instanceof Float32Array) return (values, at) => values.set(source.subarray(offset + at, offset + at + values.length))
  return (values, at) => {
    source.view(offset + at, [values.length]).toFloat32Array(values)
  }
}

/** Writes `tensors` to `path` atomically (temporary file, fsync, rename), fetching their values chunk by chunk. */
export async function writeSafetensorsChunked(
  path: string,
  tensors: Map<string, ChunkedTensor> | Record<string, ChunkedTensor>,
  options: WriteOptions = {},
): Promise<void> {
  const list = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))]
  for (const [name, t] of list) {
    if (!t || typeof t.fill !== 'function')
      throw new Error(`${path}: tensor "${name}": expected an object with a fill(values, at) function`)
  }
  const byName = new Map(list)
  const plan = planSafetensors(
    list.map(([name, t]) => [name, { shape: t.shape, dtype: t.dtype, count: t.shape.reduce((a, b) => a * b, 1) }]),
    options,
    path,
  )
  const values = new Float32Array(CHUNK_ELEMENTS)
  const bytes = new Uint8Array(4 * CHUNK_ELEMENTS)
  try {
    await replaceFileAtomic(path, async (tmp) => {
      const fh = await open(tmp, 'w')
      try {
        await writeFully(fh, plan.head, 0)
        for (const p of plan.tensors) {
          const width = p.dtype === 'F32' ? 4 : 2
          for (let at = 0; at < p.count; at += CHUNK_ELEMENTS) {
            const n = Math.min(CHUNK_ELEMENTS, p.count - at)
            const chunk = values.subarray(0, n)
            byName.get(p.name)!.fill(chunk, at)
            encodeInto(p.dtype, chunk, bytes, 0)
            await writeFully(fh, bytes.subarray(0, n * width), p.at + at * width)
          }
        }
        await fh.sync()
      } finally {
        await fh.close()
      }
    })
  } catch (e) {
    throw new Error(`${path}: cannot write safetensors file (${(e as Error).message})`)
  }
}
