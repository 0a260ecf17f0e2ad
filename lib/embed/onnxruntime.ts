// onnxruntime-node as simcsepp uses it (OnnxEncoder and bench encode's comparison): loaded at run time, since it is
// not a dependency of simcsepp, and fed length-sorted batches of packed token ids (engine.ts's Tokenized),
// padded to the batch's longest sentence with the attention mask zero on the padding, as SentenceEncoder pads.
import type { Tokenized } from './engine.js'

export interface OrtTensor {
  data: Float32Array
  dims: readonly number[]
}
export interface OrtSession {
  readonly inputNames: readonly string[]
  readonly outputNames: readonly string[]
  run(feeds: Record<string, unknown>): Promise<Record<string, OrtTensor>>
  release(): Promise<void>
}
export interface Ort {
  InferenceSession: { create(path: string, options: Record<string, unknown>): Promise<OrtSession> }
  Tensor: new (type: 'int64', data: BigInt64Array, dims: number[]) => unknown
  env: { versions?: { common?: string } }
}

/** onnxruntime-node, or why it cannot be used. */
export async function loadOnnxruntime(): Promise<Ort | string> {
  try {
    const name = 'onnxruntime-node' // not a dependency: resolved at run time
    const m = (await import(name)) as { default?: Ort } & Ort
    return m.default ?? m
  } catch (e) {
    return `onnxruntime-node not installed (${(e as Error).message.split('\n')[0]})`
  }
}

/** The session's feeds for the sentences `indices` of `tok`: int64 [batch, longest] ids, mask and token types. */
export function onnxFeeds(ort: Ort, tok: Tokenized, indices: ArrayLike<number>, inputs: readonly string[]): Record<string, unknown> {
  let T = 1
  for (let b = 0; b < indices.length; b++) T = Math.max(T, tok.offsets[indices[b] + 1] - tok.offsets[indices[b]])
  const n = indices.length * T
  const ids = new BigInt64Array(n),
    mask = new BigInt64Array(n),
    types = new BigInt64Array(n)
  for (let b = 0; b < indices.length; b++) {
    const i = indices[b]
    for (let k = tok.offsets[i]; k < tok.offsets[i + 1]; k++) {
      const at = b * T + k - tok.offsets[i]
      ids[at] = BigInt(tok.ids[k])
      types[at] = BigInt(tok.types[k])
      mask[at] = 1n
    }
  }
  const dims = [indices.length, T]
  const all: Record<string, unknown> = {
    input_ids: new ort.Tensor('int64', ids, dims),
    attention_mask: new ort.Tensor('int64', mask, dims),
    token_type_ids: new ort.Tensor('int64', types, dims),
  }
  return Object.fromEntries(inputs.map((name) => [name, all[name]]))
}
