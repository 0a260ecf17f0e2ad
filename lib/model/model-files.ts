// What a model directory must hold (config.json, weights, a tokenizer), and where it keeps its weights,
// as transformers looks for them: model.safetensors, else
// the shards that model.safetensors.index.json's weight_map names (what save_pretrained writes for a
// large model). A directory with only PyTorch pickles (pytorch_model.bin, possibly sharded) cannot be
// read without Python: the message says how to convert it.
import { existsSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import type { SafetensorsEntry } from '../safetensors.js'
import { SafetensorsReader } from '../safetensors-reader.js'
import { readJsonFile } from '../util/json.js'

export const SINGLE_FILE = 'model.safetensors'
export const SHARD_INDEX = 'model.safetensors.index.json'

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

/**
 * What is missing when `dir` has no readable weights (`model.safetensors`, with a conversion hint when
 * only PyTorch weights are there), or null when model.safetensors or a shard index is present.
 */
export function missingWeights(dir: string): string | null {
  if (existsSync(join(dir, SINGLE_FILE)) || existsSync(join(dir, SHARD_INDEX))) return null
  const pytorch = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((f) => existsSync(join(dir, f)))
  if (!pytorch) return SINGLE_FILE
  return (
    `${SINGLE_FILE} (only ${pytorch} is there, PyTorch's format, which needs Python to read: convert it to safetensors, ` +
    `e.g. python -c "from transformers import AutoModel; AutoModel.from_pretrained('${dir}').save_pretrained('${dir}', safe_serialization=True)")`
  )
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
  const single = join(dir, SINGLE_FILE)
  if (existsSync(single)) return { source: single, files: [single], bytes: statSync(single).size }
  const index = join(dir, SHARD_INDEX)
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
  const readers: SafetensorsReader[] = []
  const close = async () => {
    await Promise.all(readers.map((r) => r.close()))
  }
  const holder = new Map<string, SafetensorsReader>()
  const entries = new Map<string, SafetensorsEntry>()
  try {
    for (const file of w.files) {
      const reader = await SafetensorsReader.open(file)
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
  const dir = index.slice(0, index.length - SHARD_INDEX.length)
  const out = new Map<string, string>()
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || !/^[^/\\]+\.safetensors$/.test(file) || file.startsWith('.'))
      throw new Error(`${index}: weight_map["${name}"] must name a .safetensors file in the same folder, got ${JSON.stringify(file)}`)
    out.set(name, join(dir, file))
  }
  if (!out.size) throw new Error(`${index}: weight_map is empty`)
  return out
}
