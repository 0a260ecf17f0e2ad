// What a model directory must hold (config.json, weights, a tokenizer), and where it keeps its weights,
// as transformers looks for them: model.safetensors, else
// the shards that model.safetensors.index.json's weight_map names (what save_pretrained writes for a
// large model), else PyTorch's pytorch_model.bin or the shards of pytorch_model.bin.index.json (read without Python
// and without running the pickles' code: lib/pytorch/torch-checkpoint.ts).
import { existsSync, statSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import type { SafetensorsEntry } from '../safetensors.js'
import { SafetensorsReader } from '../safetensors-reader.js'
import { TorchCheckpointReader } from '../pytorch/torch-checkpoint.js'
import { readJsonFile } from '../util/json.js'

export const SINGLE_FILE = 'model.safetensors'
export const SHARD_INDEX = 'model.safetensors.index.json'
const TORCH_FILE = 'pytorch_model.bin'
const TORCH_INDEX = 'pytorch_model.bin.index.json'

/** The weight files of `dir`: one safetensors file, or an index and its shards. */
export interface WeightFiles {
  /** model.safetensors, or the index. */
  source: string
  /** The shards in the index's order (the single file when not sharded). */
  files: string[]
  /** Tensor name -> shard file, for a sharded model. */
  weightMap?: Map<string, string>
  /** Bytes of all files together. */
  bytes: number
}

/** The weights file `dir` holds, in transformers' order of preference, or null. */
function weightsSource(dir: string): string | null {
  const found = [SINGLE_FILE, SHARD_INDEX, TORCH_FILE, TORCH_INDEX].find((f) => existsSync(join(dir, f)))
  return found ? join(dir, found) : null
}

/**
 * What is missing when `dir` has no readable weights (`model.safetensors`), or null when model.safetensors, a shard
 * index or PyTorch's weights are present.
 */
export function missingWeights(dir: string): string | null {
  return weightsSource(dir) ? null : `${SINGLE_FILE} (or ${TORCH_FILE})`
}

/** The files `dir` lacks to be a model directory (config.json, weights, tokenizer.json or vocab.txt); [] when none. */
export function missingModelFiles(dir: string): string[] {
  const missing: string[] = []
  if (!existsSync(join(dir, 'config.json'))) missing.push('config.json')
  const weights = missingWeights(dir)
  if (weights) missing.push(weights)
  if (!existsSync(join(dir, 'tokenizer.json')) && !existsSync(join(dir, 'vocab.txt')))
    missing.push('a tokenizer (tokenizer.json or vocab.txt)')
  return missing
}

/** The weight files of `dir`, checked to exist; an Error naming what is missing otherwise. */
export async function findWeightFiles(dir: string): Promise<WeightFiles> {
  const missing = missingWeights(dir)
  if (missing) throw new Error(`${dir}: no ${missing}`)
  const source = weightsSource(dir)!
  if (!source.endsWith('.index.json')) return { source, files: [source], bytes: statSync(source).size }
  const index = source
  const weightMap = await readWeightMap(index)
  const files = [...new Set(weightMap.values())]
  let bytes = 0
  for (const file of files) {
    if (!existsSync(file)) {
      const count = [...weightMap.values()].filter((f) => f === file).length
      throw new Error(`${index}: shard ${basename(file)} (${count} tensors) is missing from ${dir}`)
    }
    bytes += statSync(file).size
  }
  return { source: index, files, weightMap, bytes }
}

/** The tensors of a model's weight files, opened for reading (SafetensorsReader: header now, data on request). */
export interface WeightReader {
  /** Every tensor by name (a sharded model's from the shard the index names). */
  readonly entries: ReadonlyMap<string, SafetensorsEntry>
  /** The file that holds tensor `name`. */
  fileOf(name: string): string
  /** Reads tensor `name` in chunks as fp32 (SafetensorsReader.read). */
  read(name: string, visit: (values: Float32Array, at: number) => void): Promise<void>
  close(): Promise<void>
}

/** Opens the weight files and reads their headers; close the reader when done. */
export async function openWeights(w: WeightFiles): Promise<WeightReader> {
  const readers: (SafetensorsReader | TorchCheckpointReader)[] = []
  const close = async () => {
    await Promise.all(readers.map((r) => r.close()))
  }
  const holder = new Map<string, SafetensorsReader | TorchCheckpointReader>()
  const entries = new Map<string, SafetensorsEntry>()
  try {
    for (const file of w.files) {
      const reader = file.endsWith('.bin') ? await TorchCheckpointReader.open(file) : await SafetensorsReader.open(file)
      readers.push(reader)
      if (!w.weightMap) {
        for (const [name, e] of reader.entries) {
          holder.set(name, reader)
          entries.set(name, e)
        }
        continue
      }
      for (const [name, at] of w.weightMap) {
        if (at !== file) continue
        const e = reader.entries.get(name)
        if (!e) throw new Error(`${w.source} maps tensor '${name}' to ${basename(file)}, which does not hold it`)
        holder.set(name, reader)
        entries.set(name, e)
      }
    }
  } catch (e) {
    await close()
    throw e
  }
  const readerOf = (name: string) => {
    const r = holder.get(name)
    if (!r) throw new Error(`${w.source}: no tensor named ${JSON.stringify(name)}`)
    return r
  }
  return {
    entries,
    fileOf: (name) => readerOf(name).path,
    read: (name, visit) => readerOf(name).read(name, visit),
    close,
  }
}

/** The index's weight_map: tensor name -> shard path (a plain file name in the same directory). */
async function readWeightMap(index: string): Promise<Map<string, string>> {
  const json = await readJsonFile(index)
  const map = (json as { weight_map?: unknown } | null)?.weight_map
  if (map === null || typeof map !== 'object' || Array.isArray(map))
    throw new Error(`${index}: expected an object with a "weight_map" object`)
  const dir = dirname(index)
  const ext = index.endsWith(TORCH_INDEX) ? '.bin' : '.safetensors'
  const out = new Map<string, string>()
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || !file.endsWith(ext) || /[/\\]/.test(file) || file.startsWith('.'))
      throw new Error(`${index}: weight_map["${name}"] must name a ${ext} file in the same folder, got ${JSON.stringify(file)}`)
    out.set(name, join(dir, file))
  }
  if (!out.size) throw new Error(`${index}: weight_map is empty`)
  return out
}
