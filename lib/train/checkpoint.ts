// Crash-safe training checkpoints: everything needed to continue bit for bit (parameters with the
// MLP head, AdamW moments and step, data position, the run's seed, best eval so far, and a copy of
// the run's tokenizer: tokenizer-copy.ts).
//
// Written into `<out>/run/checkpoint.tmp-<pid>/`, each file fsynced, then swapped in with renames:
// checkpoint -> checkpoint.old, tmp -> checkpoint, rm old (all under run/: run-layout.ts). A kill at any moment leaves either the
// new or the old checkpoint complete; loadCheckpoint() falls back to checkpoint.old when the newer one
// is missing or does not load (a corrupted file).
import { existsSync } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { SafetensorsReader } from '../safetensors-reader.js'
import { chunksOf, writeSafetensorsChunked } from '../safetensors-writer.js'
import type { Tensor } from '../tensor.js'
import { syncDir, writeFileSynced } from '../util/atomic-write.js'
import { readJsonFile } from '../util/json.js'
import { validateCheckpointState, type CheckpointState } from './checkpoint-state.js'
import { checkpointDir, checkpointDirsOf, removeTopLevelCheckpoints, RUN_STATE_DIR } from './run-layout.js'
import { readTokenizerCopy, tokenizerRecord, writeTokenizerCopy, type TokenizerCopy } from './tokenizer-copy.js'

export type { CheckpointState } from './checkpoint-state.js'

/** What saveCheckpoint writes: the parameters and AdamW moments as tensors (any device) or host copies. */
export interface Checkpoint {
  state: CheckpointState
  params: Tensor | Float32Array
  adamM: Tensor | Float32Array
  adamV: Tensor | Float32Array
  /** The run's tokenizer files (null: an older checkpoint without them); recorded in state.tokenizer. */
  tokenizer: TokenizerCopy | null
}

/**
 * A checkpoint as loadCheckpoint() returns it: its state, tokenizer and directory, with the header of its
 * tensors checked; readCheckpointTensors reads the tensors themselves into the model and optimiser.
 */
export interface LoadedCheckpoint {
  state: CheckpointState
  tokenizer: TokenizerCopy | null
  dir: string
  /** Elements of each of params, adam.m and adam.v. */
  size: number
}

/** The checkpoint's tensors and where readCheckpointTensors puts them. */
export interface CheckpointTensors {
  params?: Tensor
  adamM?: Tensor
  adamV?: Tensor
}

const STORED_AS: Record<keyof CheckpointTensors, string> = { params: 'params', adamM: 'adam.m', adamV: 'adam.v' }

const lengthOf = (x: Tensor | Float32Array) => (x instanceof Float32Array ? x.length : x.numel)

export async function saveCheckpoint(out: string, ckpt: Checkpoint): Promise<void> {
  const final = checkpointDir(out),
    old = `${final}.old`
  const tmp = `${final}.tmp-${process.pid}`
  const parent = join(out, RUN_STATE_DIR)
  await rm(tmp, { recursive: true, force: true })
  await mkdir(tmp, { recursive: true })
  const n = lengthOf(ckpt.params)
  if (lengthOf(ckpt.adamM) !== n || lengthOf(ckpt.adamV) !== n)
    throw new Error('saveCheckpoint: params, adam.m and adam.v differ in length')
  // Straight from the tensors (4 MB at a time) when given tensors: no model-sized copies in JavaScript.
  await writeSafetensorsChunked(
    join(tmp, 'state.safetensors'),
    new Map([
      ['params', { shape: [n], fill: chunksOf(ckpt.params) }],
      ['adam.m', { shape: [n], fill: chunksOf(ckpt.adamM) }],
      ['adam.v', { shape: [n], fill: chunksOf(ckpt.adamV) }],
    ]),
  )
  if (ckpt.tokenizer) await writeTokenizerCopy(tmp, ckpt.tokenizer)
  const state = { ...ckpt.state, tokenizer: ckpt.tokenizer ? tokenizerRecord(ckpt.tokenizer) : undefined }
  await writeFileSynced(join(tmp, 'state.json'), JSON.stringify(state, null, 2) + '\n')
  await syncDir(tmp)
  await rm(old, { recursive: true, force: true })
  if (existsSync(final)) await rename(final, old)
  await rename(tmp, final)
  await syncDir(parent)
  await rm(old, { recursive: true, force: true })
  // A resumed run from before run/ existed: its checkpoints at the top are superseded now.
  await removeTopLevelCheckpoints(out)
}

/** The checkpoint directory to resume from, given an output directory (either layout) or a checkpoint directory. */
export function findCheckpoint(dir: string): string | null {
  return candidates(dir)[0] ?? null
}

/** The checkpoint directories worth trying for `dir`, newest first (run/ before the older layout's top level). */
function candidates(dir: string): string[] {
  const found = [...checkpointDirsOf(dir), dir].filter((d) => existsSync(join(d, 'state.json')) && existsSync(join(d, 'state.safetensors')))
  return [...new Set(found)]
}

async function loadFrom(found: string): Promise<LoadedCheckpoint> {
  const stateFile = join(found, 'state.json')
  const state = validateCheckpointState(await readJsonFile(stateFile), stateFile)
  const file = join(found, 'state.safetensors')
  const reader = await SafetensorsReader.open(file) // the header now (a truncated file fails here), the data when applied
  let size: number
  try {
    const sizes = Object.values(STORED_AS).map((name) => {
      const e = reader.entries.get(name)
      if (!e) throw new Error(`${file}: missing tensor ${name}`)
      return e.shape.reduce((a, b) => a * b, 1)
    })
    if (sizes.some((n) => n !== sizes[0])) throw new Error(`${file}: params, adam.m and adam.v differ in length`)
    size = sizes[0]!
  } finally {
    await reader.close()
  }
  const tokenizer = state.tokenizer ? await readTokenizerCopy(found, state.tokenizer) : null
  return { state, tokenizer, dir: found, size }
}

/**
 * Reads the checkpoint's tensors straight into `into` (each of ck.size elements, on any device), 4 MB at a
 * time: resuming bert-base no longer holds three model-sized copies in JavaScript memory on the way.
 */
export async function readCheckpointTensors(ck: LoadedCheckpoint, into: CheckpointTensors): Promise<void> {
  const file = join(ck.dir, 'state.safetensors')
  const reader = await SafetensorsReader.open(file)
  try {
    for (const [key, target] of Object.entries(into) as [keyof CheckpointTensors, Tensor | undefined][]) {
      if (!target) continue
      if (target.numel !== ck.size)
        throw new Error(`readCheckpointTensors: ${key} holds ${target.numel} elements, the checkpoint ${ck.size}`)
      await reader.read(STORED_AS[key], (values, at) => {
        target.view(at, [values.length]).copyFrom(values)
      })
    }
  } finally {
    await reader.close()
  }
}

/**
 * Loads the newest checkpoint of `dir` that is intact; `onFallback` hears why a newer one was skipped.
 * Throws with every candidate's problem when none loads.
 */
export async function loadCheckpoint(dir: string, onFallback?: (message: string) => void): Promise<LoadedCheckpoint> {
  const dirs = candidates(dir)
  if (!dirs.length)
    throw new Error(`--resume ${dir}: no checkpoint there (expected ${checkpointDir(dir)}/state.json and state.safetensors)`)
  const problems: string[] = []
  for (const d of dirs) {
    try {
      const ck = await loadFrom(d)
      if (problems.length) onFallback?.(`${problems.join('; ')}: resuming from the previous checkpoint ${d} instead`)
      return ck
    } catch (e) {
      problems.push((e as Error).message)
    }
  }
  throw new Error(`--resume ${dir}: no usable checkpoint: ${problems.join('; ')}`)
}
