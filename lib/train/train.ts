// The SimCSE / SimCSE++ training loop as a library function; `simcsepp train` is a thin layer on it.
//
// train() wires the parts together: options (options.ts), device, tokenizer and model (setup.ts),
// the output directory with its log, checkpoints and resume checks (run-dir.ts), STS evaluation with
// best-model selection (evaluation.ts) and the optimizer step (step.ts). The data order is a seeded
// shuffle per epoch and checkpoints hold parameters, moments, step and data position, so a resumed run
// ends with the same weights, bit for bit on CPU, as an uninterrupted one.
import { join } from 'node:path'
import { AdamW } from '../optim/adamw.js'
import { BatchStream, SentenceFile } from '../data/sentences.js'
import { findCheckpoint } from './checkpoint.js'
import type { StepInfo, TrainHooks, TrainResult } from './events.js'
import { Evaluator, modelEmbedder, readEvalSets } from './evaluation.js'
import { fixedOnResume, resolveTrainOptions, type ResolvedTrainOptions, type TrainOptions } from './options.js'
import { takeOutputDir } from './out-dir.js'
import { RunDir, resumeFrom } from './run-dir.js'
import { createModel, loadTokenizer, maxSequenceLength, trainingDevice } from './setup.js'
import { TrainingStep } from './step.js'

export type { TrainOptions } from './options.js'
export type { EvalInfo, StepInfo, TrainHooks, TrainResult } from './events.js'

export async function train(options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const o = resolveTrainOptions(options)
  const say = (s: string) => hooks.onMessage?.(s)
  const checkpoint = o.resume ? findCheckpoint(o.resume) : null
  if (o.resume && !checkpoint)
    throw new Error(`--resume ${o.resume}: no checkpoint there (it is written every saveEvery steps into <out>/checkpoint)`)
  // Nothing is written into out before this: it checks the location, locks it, and refuses to
  // overwrite an earlier run unless asked.
  const lock = await takeOutputDir(o.out, { resume: o.resume, overwrite: o.overwrite, say })
  try {
    return await trainLocked(o, checkpoint, hooks, say)
  } finally {
    lock.release()
  }
}

async function trainLocked(
  o: ResolvedTrainOptions,
  checkpoint: string | null,
  hooks: TrainHooks,
  say: (s: string) => void,
): Promise<TrainResult> {
  const out = o.out
  const device = trainingDevice(o.device, say)
  const file = await SentenceFile.open(o.data)
  if (file.count < 2) throw new Error(`${o.data}: at least 2 sentences are needed (found ${file.count})`)
  const tokenizer = await loadTokenizer(o, file, say)
  const evalSets = await readEvalSets(o.evalFiles)
  const model = await createModel(o, tokenizer, device)
  const maxLen = maxSequenceLength(model.config, o.maxLen)
  const totalSteps = o.steps ?? BatchStream.batchesPerEpoch(file.count, o.batchSize) * o.epochs
  const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: o.lr, weightDecay: o.weightDecay })

  const runOptions = fixedOnResume(o)
  // From the directory given, not the checkpoint found in it: a corrupted newest checkpoint falls back to checkpoint.old.
  const resumed =
    checkpoint && o.resume ? await resumeFrom(o.resume, runOptions, model, opt, { data: file.fingerprint, totalSteps, say }) : null
  if (resumed) say(`resuming from ${resumed.dir} at step ${resumed.step} of ${totalSteps}`)
  const startStep = resumed?.step ?? 0,
    elapsedBefore = resumed?.elapsedSeconds ?? 0
  const stream = new BatchStream(file, { batchSize: o.batchSize, seed: o.seed, start: resumed?.dataPosition as never })
  const run = await RunDir.open(out, startStep)
  await run.writeArgs({ ...o, totalSteps, device, vocabSize: tokenizer.vocabSize })

  const saveModel = () => run.saveModel(model, tokenizer, maxLen, o.pooling)
  const evaluating = evalSets.length > 0 && o.evalEvery > 0
  const evaluator = new Evaluator(evalSets, modelEmbedder(model, tokenizer, maxLen, o.pooling), saveModel, resumed?.best ?? null)
  const evaluate = async (step: number) => {
    const info = await evaluator.evaluate(step)
    await run.log(info)
    hooks.onEval?.(info)
  }
  const step = new TrainingStep(model, opt, tokenizer, o, maxLen, totalSteps, device)
  const close = async () => {
    step.dispose()
    await file.close()
    model.dispose()
    opt.dispose()
  }

  if (evaluating && startStep === 0) await evaluate(0) // the untrained baseline
  const loopStart = performance.now()
  const elapsed = () => elapsedBefore + (performance.now() - loopStart) / 1000
  for (let s = startStep; s < totalSteps; s++) {
    const info: StepInfo = await step.run(s, stream, elapsed, join(out, 'checkpoint'))
    await run.log(info)
    hooks.onStep?.(info)
    const done = s + 1
    if (evaluating && (done % o.evalEvery === 0 || done === totalSteps)) await evaluate(done)
    const stop = hooks.signal?.aborted === true && done < totalSteps
    if ((o.saveEvery > 0 && done % o.saveEvery === 0) || done === totalSteps || stop) {
      const state = {
        step: done,
        dataPosition: stream.position,
        seed: o.seed,
        best: evaluator.best,
        options: runOptions,
        elapsedSeconds: info.elapsedSeconds,
        data: file.fingerprint,
      }
      await run.saveCheckpoint(model, opt, state)
    }
    if (stop) {
      say(`stopped after step ${done} of ${totalSteps}; checkpoint written: continue with --resume ${out}`)
      await close()
      return { out, steps: done, history: run.history, best: evaluator.best, interrupted: true }
    }
  }
  // Without evaluation the final weights are the result; with it, the best ones already are in out/.
  if (!evaluating || !evaluator.best) await saveModel()
  await run.finish(evaluator.best)
  await close()
  return { out, steps: totalSteps, history: run.history, best: evaluator.best, interrupted: false }
}
