// The SimCSE / SimCSE++ training loop as a library function; `simcsepp train` is a thin layer on it.
//
// train() wires the parts together: options (options.ts), device, tokenizer and model (setup.ts),
// the output directory with its log, checkpoints and resume checks (run-dir.ts), STS evaluation with
// best-model selection (evaluation.ts) and the optimizer step (step.ts). The data order is a seeded
// shuffle per epoch and checkpoints hold parameters, moments, step, data position and the tokenizer,
// so a resumed run ends with the same weights, bit for bit on CPU, as an uninterrupted one. Buffers
// are sized by the batch the data can fill (batch-size.ts), checked against memory first. Several data files are
// several datasets (datasets.ts): one reader, batch stream and TrainingStep each over the shared model and
// optimizer, and a seeded schedule that gives each step's dataset from the step number alone.
//
// Data-parallel (lib/distributed/, started by an MPI launcher or `distributed: true`): every rank reads the
// same global batches and holds the same weights; the step splits the work (step.ts). Rank 0 alone owns
// the output directory: it locks it, writes the log, checkpoints, evaluations and model, and is the one
// rank that reports through the hooks. Checkpoints hold nothing per rank, so a resume may use any number
// of ranks. An error on any rank ends the whole job (MPI_Abort): the others would wait in a collective.
import { join } from 'node:path'
import { addon } from '../native.js'
import { AdamW } from '../optim/adamw.js'
import { BatchStream } from '../data/sentences.js'
import { effectiveBatchSize, checkBatchFits, chooseMicroBatch } from './batch-size.js'
import { stepMemory } from '../model/memory-budget.js'
import { findCheckpoint, loadCheckpoint } from './checkpoint.js'
import { checkpointDir } from './run-layout.js'
import { SELECTION_METRIC_NAMES, type StepInfo, type TrainHooks, type TrainResult } from './events.js'
import { bestScore, Evaluator, formatScore, modelEmbedder, readEvalSets, readRetrievalSets } from './evaluation.js'
import { readTaskSets, selectionSplit, TASK_TYPES } from './task-evaluation.js'
import { readMseSentences, type MseSentences } from '../eval/mse.js'
import { matryoshkaPlan, scratchDim } from './matryoshka-options.js'
import {
  EVAL_SET_OPTIONS,
  fixedOnResume,
  forDataset,
  recordedDatasets,
  resolveTrainOptions,
  selectionKind,
  type ResolvedTrainOptions,
  type TrainOptions,
} from './options.js'
import { takeOutputDir } from './out-dir.js'
import { applyCheckpoint, checkResumable, RunDir } from './run-dir.js'
import { createModel, loadTokenizer, maxSequenceLength, trainingDevice, withBasePooling } from './setup.js'
import { TrainingStep, type LaunchedStep } from './step.js'
import { viewCount } from './objective.js'
import { loadTeacher, type TeacherData } from './teacher.js'
import { batchSamplerFor, columnsOf, datasetBatchSampler, openTrainingData, withDataFormat, type TrainingData } from './training-data.js'
import { DatasetSchedule } from './datasets.js'
import { hasDropout } from '../model/config.js'
import { readSentenceTransformersConfig } from '../embed/sentence-transformers-config.js'
import type { InheritedSettings } from './sentence-transformers.js'
import { rolePrefixText } from '../embed/role-prompts.js'
import { startDistributed, type Communicator } from '../distributed/communicator.js'
import { resolveHfPath, resolveModel, setLabel } from '../hub/hub-model.js'

export type { TrainOptions } from './options.js'
export type { EvalInfo, StepInfo, TrainHooks, TrainResult } from './events.js'

/**
 * The options with `model` and `teacher` given as Hugging Face Hub ids resolved to their cached snapshots, and data
 * and evaluation files given as hf://datasets/... paths to their cached files (downloaded where missing:
 * lib/hub/hub-model.ts). Only what is given that way changes.
 */
async function withHubFiles(options: TrainOptions): Promise<TrainOptions> {
  if (!options || typeof options !== 'object') return options
  const model = typeof options.model === 'string' ? await resolveModel(options.model) : options.model
  const teacher = typeof options.teacher === 'string' ? await resolveModel(options.teacher) : options.teacher
  const paths = async <T>(v: T): Promise<T> =>
    (typeof v === 'string' ? await resolveHfPath(v) : Array.isArray(v) ? await Promise.all(v.map((p) => resolveHfPath(p))) : v) as T
  const data = await paths(options.data)
  const evalSets = Object.fromEntries(await Promise.all(EVAL_SET_OPTIONS.map(async (k) => [k, await paths(options[k])])))
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)
  return model === options.model &&
    teacher === options.teacher &&
    same(data, options.data) &&
    EVAL_SET_OPTIONS.every((k) => same(evalSets[k], options[k]))
    ? options
    : { ...options, model, teacher, data, ...evalSets }
}

/** One dataset of a run: its options (forDataset), reader, batch size and views; its step and stream once made. */
interface RunDataset {
  o: ResolvedTrainOptions
  file: TrainingData
  batch: number
  views: number
  step?: TrainingStep
  stream?: BatchStream
}

export async function train(options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const o = resolveTrainOptions(await withBasePooling(await withDataFormat(await withHubFiles(options))))
  const comm = startDistributed(o.distributed)
  if (comm && comm.size > 1) {
    try {
      return await trainRank(o, hooks, comm)
    } catch (e) {
      return comm.abort((e as Error).message)
    }
  }
  const say = (s: string) => hooks.onMessage?.(s)
  if (o.resume && !findCheckpoint(o.resume))
    throw new Error(`--resume ${o.resume}: no checkpoint there (it is written every saveEvery steps into <out>/run/checkpoint)`)
  // Nothing is written into out before this: it checks the location, locks it, and refuses to
  // overwrite an earlier run unless asked.
  const lock = await takeOutputDir(o.out, { resume: o.resume, overwrite: o.overwrite, say })
  try {
    return await trainLocked(o, hooks, say)
  } finally {
    lock.release()
  }
}

/** One rank of a data-parallel run: rank 0 takes the output directory and reports; the others stay silent. */
async function trainRank(o: ResolvedTrainOptions, hooks: TrainHooks, comm: Communicator): Promise<TrainResult> {
  const lead = comm.rank === 0
  const say = (s: string) => (lead ? hooks.onMessage?.(s) : undefined)
  if (o.resume && !findCheckpoint(o.resume))
    throw new Error(`--resume ${o.resume}: no checkpoint there (it is written every saveEvery steps into <out>/run/checkpoint)`)
  const lock = lead ? await takeOutputDir(o.out, { resume: o.resume, overwrite: o.overwrite, say }) : null
  // The others read the directory (a checkpoint, a vocabulary) only once rank 0 has cleaned it up.
  comm.barrier()
  try {
    const silent = { signal: hooks.signal }
    return await trainLocked(o, lead ? hooks : silent, say, comm)
  } finally {
    lock?.release()
  }
}

/**
 * trainHolding() with what it holds (the data file, the model's and optimizer's buffers, the step's graphs:
 * host and GPU memory) freed, newest first, on every way out. A caller that catches a failed run (a diverged
 * loss, a throwing hook) and starts another gets that memory back. A failure while freeing is thrown only
 * when the run itself succeeded.
 */
async function trainLocked(
  o: ResolvedTrainOptions,
  hooks: TrainHooks,
  say: (s: string) => void,
  comm: Communicator | null = null,
): Promise<TrainResult> {
  const held: (() => unknown)[] = []
  const freeAll = async (report: boolean) => {
    for (const free of held.reverse())
      try {
        await free()
      } catch (e) {
        if (report) throw e
      }
  }
  let result: TrainResult
  try {
    result = await trainHolding(o, hooks, say, comm, (free) => held.push(free))
  } catch (e) {
    await freeAll(false) // the run's error is the one to see
    throw e
  }
  await freeAll(true)
  return result
}

async function trainHolding(
  o: ResolvedTrainOptions,
  hooks: TrainHooks,
  say: (s: string) => void,
  comm: Communicator | null,
  hold: (free: () => unknown) => void,
): Promise<TrainResult> {
  const out = o.out
  const ranks = comm?.size ?? 1
  const lead = (comm?.rank ?? 0) === 0
  const device = trainingDevice(o.device, say)
  const multi = o.datasets.length > 1
  // Each dataset with its reader and its batch; a run of one file is a run of one dataset.
  const sets: RunDataset[] = []
  for (const spec of o.datasets) {
    const d = forDataset(o, spec)
    const file = await openTrainingData(d, say)
    hold(() => file.close())
    if (file.count < 2)
      throw new Error(`${d.data}: only 1 sentence; contrastive training needs at least 2 (a batch of 1 has no in-batch negatives)`)
    const batch = effectiveBatchSize(o.batchSize, file.count)
    if (batch < o.batchSize)
      say(
        `--batch-size ${o.batchSize} is more than the ${file.count} sentences of ${d.data}: each step ${multi ? 'on it ' : ''}trains on all ${batch}`,
      )
    if (batch < ranks) throw new Error(`--batch-size ${batch} is less than the ${ranks} ranks: each rank needs a sentence of the batch`)
    // The symmetric loss applies to supervised pairs and triplets (InfoNCE); in a mixture, to those datasets only.
    d.symmetric = o.symmetric && columnsOf(file) !== undefined && d.objective === 'simcse'
    // Prompts given once for every dataset apply to the supervised ones, as symmetric does; one per dataset are checked below.
    for (const k of ['queryPrompt', 'documentPrompt'] as const)
      if (multi && columnsOf(file) === undefined && o.datasets.every((s) => s[k] === spec[k])) delete d[k]
    sets.push({ o: d, file, batch, views: viewCount(d.objective, columnsOf(file)) })
  }
  const file = sets[0].file
  const batch = sets[0].batch
  if (comm)
    say(
      `data-parallel over ${ranks} ranks on ${comm.engine}: ${batch} sentences per step, ${Math.ceil(batch / ranks)} per rank at most` +
        (device === 'cpu' ? `, ${addon.numThreads()} CPU thread(s) each` : ''),
    )
  const schedule = new DatasetSchedule(
    sets.map((d) => BatchStream.batchesPerEpoch(d.file.count, d.batch)),
    o.datasetSampler,
    o.seed,
  )
  const totalSteps = o.steps ?? schedule.stepsPerEpoch * o.epochs
  // A warm-up given as a fraction of the run: its steps, as every dataset's step schedules its learning rate.
  if (o.warmupRatio !== undefined) for (const x of [o, ...sets.map((d) => d.o)]) x.warmup = Math.round(o.warmupRatio * totalSteps)
  if (multi)
    say(
      `${sets.length} datasets, each step a batch of one of them (${o.datasetSampler}): ${schedule.stepsPerEpoch} steps per epoch, ` +
        sets.map((d) => `${setLabel(d.o.data)} ${d.o.objective}`).join(', '),
    )
  // From the directory given, not the checkpoint found in it: a corrupted newest checkpoint falls back to checkpoint.old.
  const checkpoint = o.resume ? await loadCheckpoint(o.resume, say) : null
  if (multi) for (const d of sets) d.o.batchSampler = datasetBatchSampler(o.batchSampler, d.file)
  else
    sets[0].o.batchSampler = o.batchSampler = batchSamplerFor(
      o.batchSampler,
      file,
      checkpoint !== null && checkpoint.state.options.batchSampler === undefined,
    )
  const runOptions = fixedOnResume(o)
  if (checkpoint) checkResumable(checkpoint, runOptions, { data: sets.map((d) => d.file.fingerprint), totalSteps })
  // A vocabulary built from the data is written by rank 0; the other ranks read that file.
  const builtHere = !checkpoint?.tokenizer && !(o.tokenizer ?? o.model)
  const files = sets.map((d) => d.file)
  const { tokenizer, copy } = lead
    ? await loadTokenizer(o, files, checkpoint, say)
    : await (comm!.barrier(), loadTokenizer(builtHere ? { ...o, tokenizer: join(out, 'vocab.txt') } : o, files, checkpoint, say))
  if (lead) comm?.barrier()
  const evalSets = await readEvalSets(o.evalFiles)
  const retrievalSets = await readRetrievalSets(o.evalRetrieval)
  for (const r of retrievalSets)
    say(`eval: ${r.dir} (${r.split} split): ${r.queries.length} queries, ${r.corpus.length} documents, nDCG@10 every --eval-every steps`)
  const taskSets = await readTaskSets(o, say)
  const mseSets: (MseSentences & { split?: string })[] = []
  for (const path of o.evalMse) {
    const split = selectionSplit(path)
    const set = await readMseSentences(path, split)
    const what = set.source === set.target ? `${set.source.length} sentences` : `${set.source.length} parallel pairs`
    say(`eval: ${path}${split ? ` (${split} split)` : ''}: distillation, ${what}, MSE from the teacher every --eval-every steps`)
    mseSets.push({ ...set, ...(split ? { split } : {}) })
  }
  const supervised = sets.filter((d) => columnsOf(d.file) !== undefined)
  if (!supervised.length && (o.queryPrompt !== undefined || o.documentPrompt !== undefined))
    throw new TypeError('train: queryPrompt and documentPrompt apply to supervised pairs/triplets (anchors; positives and negatives)')
  for (const d of sets)
    if (columnsOf(d.file) === undefined && (d.o.queryPrompt !== undefined || d.o.documentPrompt !== undefined))
      throw new TypeError(`train: queryPrompt and documentPrompt apply to supervised pairs/triplets, not to ${d.o.data}: give '' for it`)
  if (o.symmetric && !sets.some((d) => d.o.symmetric))
    throw new TypeError('train: symmetric applies to supervised pairs/triplets (the positives against the anchors)')
  // A sentence-transformers base model's settings the output keeps (its pooling came in through withBasePooling).
  const base = o.model ? await readSentenceTransformersConfig(o.model) : null
  // The run's training prompts join the base model's as its 'query' and 'document' prompts (with several datasets,
  // the first's that has one: the others' are said).
  const trained = (k: 'queryPrompt' | 'documentPrompt') => {
    const given = sets.filter((d) => d.o[k] !== undefined)
    const others = given.filter((d) => d.o[k] !== given[0].o[k])
    if (others.length)
      say(
        `the output's ${k === 'queryPrompt' ? 'query' : 'document'} prompt is ${JSON.stringify(given[0].o[k])} (${given[0].o.data}'s); ` +
          others.map((d) => `${d.o.data} trained with ${JSON.stringify(d.o[k])}`).join(', '),
      )
    return given[0]?.o[k]
  }
  const [queryPrompt, documentPrompt] = [trained('queryPrompt'), trained('documentPrompt')]
  const prompts: Record<string, string> = {
    ...base?.prompts,
    ...(queryPrompt !== undefined ? { query: queryPrompt } : {}),
    ...(documentPrompt !== undefined ? { document: documentPrompt } : {}),
  }
  const inherited: InheritedSettings = { ...base, prompts }
  if (base?.pooling && base.pooling === o.pooling && o.pooling !== 'cls')
    say(`pooling: ${o.pooling}, as ${o.model}'s sentence-transformers config says (--pooling cls for SimCSE's)`)
  const kept = [base?.normalize ? 'Normalize module' : '', Object.keys(base?.prompts ?? {}).length ? 'prompts' : ''].filter(Boolean)
  if (kept.length) say(`the output keeps ${o.model}'s ${kept.join(' and ')}`)
  if (base?.similarityFnName && base.similarityFnName !== 'cosine')
    say(
      `the output keeps ${o.model}'s similarity_fn_name ${base.similarityFnName} (as sentence-transformers does); the losses compare vectors by cosine`,
    )
  const model = await createModel(o, tokenizer, device, checkpoint !== null, say, base)
  hold(() => model.dispose())
  if (device === 'cuda') {
    const cuda = addon.cudaStatus()
    say(`training on ${cuda.device ?? 'CUDA'}: linear layers in ${model.precision}, matrix products on ${cuda.gemm ?? 'the kernels'}`)
  }
  // Unsupervised contrast compares two dropout views of a sentence: without dropout they are one vector.
  if (sets.some((d) => columnsOf(d.file) === undefined && d.o.objective !== 'distill') && !hasDropout(model.config))
    throw new Error(
      `${o.model ?? 'the model'}: every dropout probability of its config is 0 (ModernBERT's released checkpoints ship so), and ` +
        'unsupervised SimCSE contrasts two dropout views of each sentence, which would be the same vector: pass --dropout 0.1',
    )
  const maxLen = maxSequenceLength(model.config, o.maxLen)
  const teacher =
    o.teacher !== undefined
      ? await loadTeacher(o.teacher, device, o.precision, model.embeddingDim, say, teacherData(sets, totalSteps > schedule.stepsPerEpoch))
      : null
  if (teacher) hold(() => teacher.close())
  const matryoshka = matryoshkaPlan(o.matryoshkaDims, o.matryoshkaWeights, model.embeddingDim)
  if (matryoshka)
    say(
      `Matryoshka: the ${multi ? "datasets' losses" : `${o.objective} loss`} over the first ${matryoshka.map((p) => p.dim).join(', ')} dimensions, summed`,
    )
  const memory = stepMemory(device)
  // A rank encodes its slice of each view: at most ceil(batch / ranks) sentences. Passes are sized for the
  // dataset of the most rows; each dataset's step must fit.
  const rankRows = (d: RunDataset) => d.views * Math.ceil(d.batch / ranks)
  const widest = sets.reduce((a, d) => (rankRows(d) > rankRows(a) ? d : a))
  const interBf16 = model.precision === 'bf16' // BertModel keeps the MLP's pre-activation in bfloat16
  const attentionBf16 = model.attentionBf16 // and on CUDA the attention's q | k | v, ctx and its gradient
  const micro = chooseMicroBatch(
    o.microBatch,
    { config: model.config, rows: rankRows(widest), tokens: maxLen, interBf16, attentionBf16 },
    memory.autoBudget,
  )
  if (micro.note) say(micro.note)
  for (const d of sets)
    checkBatchFits(
      {
        config: model.config,
        batch: Math.ceil(d.batch / ranks),
        requested: o.batchSize,
        maxLen: o.maxLen,
        tokens: maxLen,
        views: d.views,
        rowsPerPass: micro.rows,
        vectorDim: model.embeddingDim,
        narrowDim: scratchDim(matryoshka, model.embeddingDim),
        interBf16,
        attentionBf16,
      },
      memory.bytes,
      memory.has,
    )
  const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: o.lr, weightDecay: o.weightDecay })
  hold(() => opt.dispose())

  const resumed = checkpoint ? await applyCheckpoint(checkpoint, model, opt) : null
  if (resumed) say(`resuming from ${resumed.dir} at step ${resumed.step} of ${totalSteps}`)
  const startStep = resumed?.step ?? 0,
    elapsedBefore = resumed?.elapsedSeconds ?? 0
  // Named when the loss diverges: this run's newest checkpoint (at first, the one it resumed from).
  let lastCheckpoint = resumed ? { dir: resumed.dir, step: resumed.step } : null
  for (const [i, d] of sets.entries())
    d.stream = new BatchStream(d.file, {
      batchSize: d.batch,
      seed: o.seed,
      start: (multi ? resumed?.dataPositions?.[i] : resumed?.dataPosition) as never,
      noDuplicates: d.o.batchSampler === 'no-duplicates',
      onRepeats: (epoch, repeats) => {
        if (repeats > 0)
          say(
            `${multi ? `${d.o.data}: ` : ''}epoch ${epoch + 1}: ${repeats} of ${BatchStream.batchesPerEpoch(d.file.count, d.batch)} ` +
              'batches hold a sentence twice (the data left no other way)',
          )
      },
    })
  const run = lead ? await RunDir.open(out, startStep) : null
  const { datasets: _all, ...options } = o
  await run?.writeArgs({
    ...options,
    ...recordedDatasets(o),
    precision: model.precision,
    microBatch: micro.rows,
    batchSize: multi ? o.batchSize : batch,
    ...(!multi && batch < o.batchSize ? { batchSizeRequested: o.batchSize } : {}),
    totalSteps,
    device,
    vocabSize: tokenizer.vocabSize,
    ...(comm ? { ranks } : {}),
    ...(teacher?.projection
      ? {
          teacherProjection: `its first ${teacher.projection.to} principal components (of ${teacher.projection.from} dimensions, over ${teacher.projection.sentences} training sentences)`,
        }
      : {}),
  })

  const saveModel = async () => run?.saveModel(model, tokenizer, maxLen, o.pooling, inherited)
  const evaluating = selectionKind(o) !== undefined && o.evalEvery > 0
  const cutDims = (matryoshka ?? []).map((p) => p.dim).filter((d) => d < model.embeddingDim)
  const embedder = modelEmbedder(model, tokenizer, maxLen, o.pooling)
  // Evaluation embeds as the saved model's encode, encodeQuery and encodeDocument will: with its prompts.
  // MTEB's symmetric task types (STS too) take the prompt named after the type where the model has one (as `simcsepp eval`).
  const prefixes = {
    queryPrefix: rolePrefixText(prompts, base?.defaultPromptName, 'query'),
    documentPrefix: rolePrefixText(prompts, base?.defaultPromptName, 'document'),
    sentencePrefix: base?.defaultPromptName !== undefined ? base.prompts[base.defaultPromptName] : '',
    typePrefixes: Object.fromEntries(TASK_TYPES.filter((t) => Object.hasOwn(prompts, t)).map((t) => [t, prompts[t]])),
  }
  const evaluator = new Evaluator(
    { sts: evalSets, retrieval: retrievalSets, tasks: taskSets, ...(teacher ? { mse: { sets: mseSets, teacher: teacher.vectors } } : {}) },
    embedder,
    saveModel,
    resumed?.best ?? null,
    { cutDims, prefixes, selectBy: selectionKind(o), experiments: o.evalExperiments },
  )
  if (resumed?.best && !evaluator.best)
    say(
      `the checkpoint's best model was chosen by another measure than this run's (${evaluator.metric}): the next evaluation is the best so far`,
    )
  const evaluate = async (step: number) => {
    if (!run) return
    const info = await evaluator.evaluate(step)
    await run.log(info)
    hooks.onEval?.(info)
  }
  for (const d of sets) {
    const shape = { batch: d.batch, maxLen, totalSteps, microBatch: micro.rows, columns: columnsOf(d.file) }
    d.step = new TrainingStep(model, opt, tokenizer, d.o, shape, device, comm, d.o.objective === 'distill' ? teacher!.vectors : null)
    hold(() => d.step!.dispose()) // freed before the data and the model: it waits for the steps in flight
  }
  // Step t trains on a batch of dataset schedule.at(t); with several, its record says which, and the schedule's epoch.
  const launch = async (t: number): Promise<LaunchedStep> => {
    const { dataset, epoch } = schedule.at(t)
    const d = sets[dataset]
    const launched = await d.step!.launch(t, d.stream!, elapsed, lastCheckpoint)
    return multi ? { step: launched.step, result: () => ({ ...launched.result(), epoch, dataset }) } : launched
  }
  // Whether step t + 1 may be launched before step t's numbers are read: by the same dataset's step (its
  // graphs), which knows what it has in flight.
  const launchesAhead = (t: number) => {
    const d = schedule.at(t).dataset
    return sets[d].step!.launchesAhead && schedule.at(t + 1).dataset === d
  }
  // Every rank returns once rank 0's checkpoint or model is complete.
  const end = (steps: number, interrupted: boolean): TrainResult => {
    comm?.finish()
    const history = run?.history ?? []
    return { out, steps, history, best: evaluator.best, interrupted, ...(comm ? { rank: comm.rank } : {}) }
  }

  // The model card's account of each dataset.
  const cardData = sets.map((d) => ({ ...d.file.fingerprint, columns: columnsOf(d.file) }))
  // Evaluations logged after the best one (a resumed run's log holds its earlier ones).
  const evaluationsSinceBest = () => {
    const best = evaluator.best
    return best && run ? run.history.filter((e) => e.type === 'eval' && e.step > best.step).length : 0
  }
  if (evaluating && startStep === 0) await evaluate(0) // the untrained baseline
  const loopStart = performance.now()
  const elapsed = () => elapsedBefore + (performance.now() - loopStart) / 1000
  const signalled = () => hooks.signal?.aborted === true
  let launched = startStep < totalSteps ? await launch(startStep) : null
  for (let s = startStep; s < totalSteps; s++) {
    const done = s + 1
    const evalDue = evaluating && (done % o.evalEvery === 0 || done === totalSteps)
    const saveDue = (o.saveEvery > 0 && done % o.saveEvery === 0) || done === totalSteps
    // On CUDA the next step is launched before this one's numbers are read, so that the GPU works while
    // the host logs them, unless this step ends in an evaluation, a checkpoint or a stop: those need its
    // weights before the next step changes them (a signal arriving now stops the run after the next step).
    let next: LaunchedStep | null = null
    let failedAhead: { error: unknown } | null = null // thrown once this step is logged
    if (done < totalSteps && launchesAhead(s) && !evalDue && !saveDue && !signalled())
      try {
        next = await launch(done)
      } catch (error) {
        failedAhead = { error }
      }
    const info: StepInfo = launched!.result()
    if (comm && device === 'cuda' && s === startStep) say(`CUDA tensors travel through ${comm.cudaPath}`)
    await run?.log(info)
    hooks.onStep?.(info)
    if (failedAhead) throw failedAhead.error
    if (evalDue) await evaluate(done)
    // Early stopping: decided on rank 0 (the one that evaluates), followed by every rank.
    const patienceOut = evalDue && done < totalSteps && evaluationsSinceBest() >= o.earlyStopping && o.earlyStopping > 0
    const stopEarly = evalDue && (comm ? comm.any(patienceOut) : patienceOut)
    // Every rank stops after the same step, whichever of them was signalled.
    const stop = (comm ? comm.any(signalled()) : signalled()) && done < totalSteps && next === null
    if (saveDue || stop) {
      // With several datasets: the schedule's place, and each dataset's stream position and fingerprint.
      const at = schedule.at(done)
      const state = {
        step: done,
        dataPosition: multi ? { epoch: at.epoch, index: done - at.epoch * schedule.stepsPerEpoch } : sets[0].stream!.position,
        seed: o.seed,
        best: evaluator.best,
        options: runOptions,
        elapsedSeconds: info.elapsedSeconds,
        ...(model.dense.length ? { denseModules: model.dense.length } : {}),
        ...(multi
          ? { datasets: sets.map((d) => ({ position: d.stream!.position, data: d.file.fingerprint })) }
          : { data: file.fingerprint }),
      }
      await run?.saveCheckpoint(model, opt, state, copy)
      lastCheckpoint = { dir: checkpointDir(out), step: done }
    }
    if (stop) {
      say(`stopped after step ${done} of ${totalSteps}; checkpoint written: continue with --resume ${out}`)
      return end(done, true)
    }
    if (stopEarly) {
      const best = evaluator.best!
      say(
        `early stopping after step ${done} of ${totalSteps}: ${o.earlyStopping} evaluation${o.earlyStopping > 1 ? 's' : ''} without a better ` +
          `${evaluator.metric === 'spearman' ? 'STS Spearman' : SELECTION_METRIC_NAMES[evaluator.metric]} than step ${best.step}'s ${formatScore(evaluator.metric, bestScore(best).score)} (the model in ${out})`,
      )
      await run?.finish(best, cardData)
      return end(done, false)
    }
    launched = next ?? (done < totalSteps ? await launch(done) : null)
  }
  // Without evaluation the final weights are the result; with it, the best ones already are in out/.
  if (!evaluating || !evaluator.best) await saveModel()
  await run?.finish(evaluator.best, cardData)
  return end(totalSteps, false)
}

/** What the teacher reads of the distillation datasets: a sample, and (`severalEpochs`) every sentence. */
function teacherData(sets: RunDataset[], severalEpochs: boolean): TeacherData {
  const files = sets.filter((d) => d.o.objective === 'distill').map((d) => d.file)
  const count = files.reduce((n, f) => n + f.count, 0)
  return {
    sample: (m) => distillSample(files, m),
    count,
    all: severalEpochs
      ? async () => {
          const out: string[] = []
          for (const f of files)
            out.push(
              ...(await firstColumn(
                f,
                Array.from({ length: f.count }, (_, i) => i),
              )),
            )
          return out
        }
      : null,
  }
}

/** Lines `indices` of a distillation dataset: its sentences, or the first sentence of its pairs (the targets' own). */
async function firstColumn(file: TrainingData, indices: number[]): Promise<string[]> {
  return 'readColumns' in file ? (await file.readColumns(indices))[0] : file.readLines(indices)
}

/**
 * Up to `count` sentences spread evenly over the distillation datasets (an equal share of each, evenly spaced lines):
 * the first column of pairs, the sentences the teacher's targets are of.
 */
async function distillSample(files: TrainingData[], count: number): Promise<string[]> {
  const out: string[] = []
  for (const file of files) {
    const m = Math.min(file.count, Math.ceil(count / files.length))
    const indices = Array.from({ length: m }, (_, i) => Math.floor((i * file.count) / m))
    out.push(...(await firstColumn(file, indices)))
  }
  return out
}
