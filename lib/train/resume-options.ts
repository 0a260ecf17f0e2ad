// `simcsepp train --resume DIR` alone: the options of the run being continued, from its
// training_args.json. Options given again override them; train()'s resume checks then refuse the ones
// that must not change (fixedOnResume) and accept the rest (saveEvery, evalFiles, ...).
import { existsSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { readJsonFile } from '../util/json.js'
import { findRunFile, outOfCheckpoint } from './run-layout.js'
import type { TrainOptions } from './options.js'

// What training_args.json records besides the options (or resolved in place of one) and a resumed run
// must not take as given: the step count of the run, the tokenizer's size, the number of ranks it ran on
// (a resume may use another), the run's own location.
const NOT_OPTIONS = ['totalSteps', 'batchSizeRequested', 'vocabSize', 'ranks', 'teacherProjection', 'overwrite', 'resume', 'out']

/**
 * The options of the run in `dir` (its output directory, or its checkpoint directory inside it), to
 * continue it: out is that run's directory and resume is `dir`. With `dataGiven` (--data given again),
 * a run without training_args.json (an older one) gives null: its options are all given again, as before.
 */
export async function resumeOptions(dir: string, { dataGiven = false } = {}): Promise<TrainOptions | null> {
  // A checkpoint directory (state.json) lies inside the run's output directory (in run/, or at the top
  // of a run from before run/), and so does training_args.json.
  const out = existsSync(join(dir, 'state.json')) ? outOfCheckpoint(dir) : dir
  const file = findRunFile(out, 'training_args.json')
  if (dataGiven && !existsSync(file)) return null
  const args = (await readJsonFile(file, {
    hint: `--resume ${dir} alone needs the run's training_args.json (or give the run's options again)`,
  })) as Record<string, unknown>
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new Error(`${file}: expected a JSON object`)
  const options = Object.fromEntries(Object.entries(args).filter(([k, v]) => !NOT_OPTIONS.includes(k) && v !== null))
  // The batch size asked for, not the one the data could fill (the resume check compares the former).
  if (typeof args.batchSizeRequested === 'number') options.batchSize = args.batchSizeRequested
  // A warm-up given as a fraction: the recorded steps follow from it.
  if (typeof args.warmupRatio === 'number') delete options.warmup
  for (const data of Array.isArray(options.data) ? options.data : [options.data])
    if (!dataGiven && typeof data === 'string' && !isAbsolute(data) && !existsSync(data))
      throw new Error(
        `--resume ${dir}: the run's data ${data} (a path relative to where the run started) is not found from here: give --data`,
      )
  return { ...options, out, resume: dir } as TrainOptions
}
