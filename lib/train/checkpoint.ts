// Crash-safe training checkpoints: everything needed to continue bit for bit (parameters with the
// MLP head, AdamW moments and step, data position, the run's seed, best eval so far).
//
// Written into `<out>/checkpoint.tmp-<pid>/`, each file fsynced, then swapped in with renames:
// checkpoint -> checkpoint.old, tmp -> checkpoint, rm old. A kill at any moment leaves either the
// new or the old checkpoint complete; load() falls back to checkpoint.old when needed.
import { existsSync } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { readSafetensors, writeSafetensors } from '../safetensors.js'
import { syncDir, writeFileSynced } from '../util/atomic-write.js'
import { readJsonFile } from '../util/json.js'

export interface CheckpointState {
  /** Optimizer steps taken. */
  step: number
  /** Where the next batch starts (the data stream's serialised position). */
  dataPosition: unknown
  seed: number
  best: { step: number; spearman: number } | null
  /** The options the run was started with (resume checks the ones that must not change). */
  options: Record<string, unknown>
  /** Elapsed training seconds before this checkpoint. */
  elapsedSeconds: number
}

export interface Checkpoint {
  state: CheckpointState
  params: Float32Array
  adamM: Float32Array
  adamV: Float32Array
}

export async function saveCheckpoint(out: string, ckpt: Checkpoint): Promise<void> {
  const final = join(out, 'checkpoint'),
    old = join(out, 'checkpoint.old')
  const tmp = join(out, `checkpoint.tmp-${process.pid}`)
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
  await writeFileSynced(join(tmp, 'state.json'), JSON.stringify(ckpt.state, null, 2) + '\n')
  await syncDir(tmp)
  await rm(old, { recursive: true, force: true })
  if (existsSync(final)) await rename(final, old)
  await rename(tmp, final)
  await syncDir(out)
  await rm(old, { recursive: true, force: true })
}

/** The checkpoint directory to resume from, given an output directory or a checkpoint directory. */
export function findCheckpoint(dir: string): string | null {
  for (const d of [join(dir, 'checkpoint'), join(dir, 'checkpoint.old'), dir]) {
    if (existsSync(join(d, 'state.json')) && existsSync(join(d, 'state.safetensors'))) return d
  }
  return null
}

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const found = findCheckpoint(dir)
  if (!found) throw new Error(`--resume ${dir}: no checkpoint there (expected ${join(dir, 'checkpoint')}/state.json and state.safetensors)`)
  const state = (await readJsonFile(join(found, 'state.json'))) as CheckpointState
  const tensors = await readSafetensors(join(found, 'state.safetensors'))
  const get = (name: string) => {
    const t = tensors.get(name)
    if (!t) throw new Error(`${join(found, 'state.safetensors')}: missing tensor ${name}`)
    return t.data
  }
  return { state, params: get('params'), adamM: get('adam.m'), adamV: get('adam.v') }
}
