// Where a run keeps its state in its output directory: everything that is not the model lives under
// run/ (checkpoint/, checkpoint.old/, training_args.json, train.jsonl, metrics.json, loss_curve.svg),
// so the top holds only what Python and Node load (config.json, model.safetensors, the tokenizer, the
// sentence-transformers files, README.md). Runs written before run/ existed kept those at the top:
// resume still reads them there, moves the logs into run/ and drops the old checkpoint once a new one
// is written. The lock (.simcsepp.lock) stays at the top: it guards the whole directory.
import { existsSync } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/** The subfolder of the output directory that holds the run's state. */
export const RUN_STATE_DIR = 'run'

/** The run-state files, by name, under run/ (and at the top of runs from before run/). */
export const RUN_LOG_FILES = ['train.jsonl', 'training_args.json', 'metrics.json', 'loss_curve.svg'] as const
export const CHECKPOINT_DIRS = ['checkpoint', 'checkpoint.old'] as const
/** TensorBoard's event file of a run trained with tensorboard: true (tensorboard.ts). */
export const TENSORBOARD_DIR = 'tensorboard'

/** What marks a directory as holding a run (either layout), and what --overwrite removes (paths under the output directory). */
export const RUN_FILES = [
  ...[...CHECKPOINT_DIRS, ...RUN_LOG_FILES, TENSORBOARD_DIR].map((f) => `${RUN_STATE_DIR}/${f}`),
  ...CHECKPOINT_DIRS,
  ...RUN_LOG_FILES,
]

/** `<out>/run/<name>`. */
export function runPath(out: string, name: string): string {
  return join(out, RUN_STATE_DIR, name)
}

/** The run's newest checkpoint directory: `<out>/run/checkpoint`. */
export function checkpointDir(out: string): string {
  return runPath(out, 'checkpoint')
}

/** The checkpoint directories of `out` that a resume may use, in order: run/ first, then the older layout's. */
export function checkpointDirsOf(out: string): string[] {
  return [...CHECKPOINT_DIRS.map((d) => runPath(out, d)), ...CHECKPOINT_DIRS.map((d) => join(out, d))]
}

/** The output directory of a checkpoint directory (`<out>/run/checkpoint` or, older, `<out>/checkpoint`). */
export function outOfCheckpoint(dir: string): string {
  const up = dirname(dir)
  return basename(up) === RUN_STATE_DIR ? dirname(up) : up
}

/** A run-state file: under run/, else at the top (a run from before run/), else where it will be written. */
export function findRunFile(out: string, name: string): string {
  const inRun = runPath(out, name)
  if (existsSync(inRun)) return inRun
  const top = join(out, name)
  return existsSync(top) ? top : inRun
}

/** Makes run/ and moves an older run's logs from the top into it; returns the names moved. */
export async function prepareRunState(out: string): Promise<string[]> {
  await mkdir(join(out, RUN_STATE_DIR), { recursive: true })
  const moved: string[] = []
  for (const name of RUN_LOG_FILES) {
    const top = join(out, name)
    if (!existsSync(top)) continue
    await rm(runPath(out, name), { force: true })
    await rename(top, runPath(out, name))
    moved.push(name)
  }
  return moved
}

/** Removes the older layout's checkpoints at the top (called once a checkpoint is written under run/). */
export async function removeTopLevelCheckpoints(out: string): Promise<void> {
  for (const d of CHECKPOINT_DIRS) await rm(join(out, d), { recursive: true, force: true })
}
