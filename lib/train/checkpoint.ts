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
import { readSafetensors, writeSafetensors } from '../safetensors.js'
import { syncDir, writeFileSynced } from '../util/atomic-write.js'
import { readJsonFile } from '../util/json.js'
import { validateCheckpointState, type CheckpointState } from './checkpoint-state.js'
import { checkpointDir, checkpointDirsOf, removeTopLevelCheckpoints, RUN_STATE_DIR } from './run-layout.js'
import { readTokenizerCopy, tokenizerRecord, writeTokenizerCopy, type TokenizerCopy } from './tokenizer-copy.js'

export type { CheckpointState } from './checkpoint-state.js'

export interface Checkpoint {
  state: CheckpointState
  params: Float32Array
  adamM: Float32Array
  adamV: Float32Array
  /** The run's tokenizer files (null: an older checkpoint without them); recorded in state.tokenizer. */
  tokenizer: TokenizerCopy | null
}

/** A checkpoint as loadCheckpoint() returns it: with the directory it was read from. */
export type LoadedCheckpoint = Checkpoint & { dir: string }

export async function saveCheckpoint(out: string, ckpt: Checkpoint): Promise<void> {
  const final = checkpointDir(out),
    old = `${final}.old`
  const tmp = `${final}.tmp-${process.pid}`
  const parent = join(out, RUN_STATE_DIR)
  await rm(tmp, { recursive: true, force: true })
  await mkdir(tmp, { recursive: true })
  const n = ckpt.params.length
  await writeSafetensors(
    join(tmp, 'state.safetensors'),
    new Map([
      ['params', { shape: [n], data: ckpt.params }],
      ['adam.m', { shape: [n], data: ckpt.adamM }],
      ['adam.v', { shape: [n], data: ckpt.adamV }],
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

async function loadFrom(found: string): Promise<Checkpoint> {
  const stateFile = join(found, 'state.json')
  const state = validateCheckpointState(await readJsonFile(stateFile), stateFile)
  const tensors = await readSafetensors(join(found, 'state.safetensors'))
  const get = (name: string) => {
    const t = tensors.get(name)
    if (!t) throw new Error(`${join(found, 'state.safetensors')}: missing tensor ${name}`)
    return t.data
  }
  const tokenizer = state.tokenizer ? await readTokenizerCopy(found, state.tokenizer) : null
  const ck = { state, params: get('params'), adamM: get('adam.m'), adamV: get('adam.v'), tokenizer }
  if (ck.adamM.length !== ck.params.length || ck.adamV.length !== ck.params.length)
    throw new Error(`${join(found, 'state.safetensors')}: params, adam.m and adam.v differ in length`)
  return ck
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
      return { ...ck, dir: d }
    } catch (e) {
      problems.push((e as Error).message)
    }
  }
  throw new Error(`--resume ${dir}: no usable checkpoint: ${problems.join('; ')}`)
}
