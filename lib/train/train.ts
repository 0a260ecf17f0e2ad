// The SimCSE / SimCSE++ training loop as a library function; `simcsepp train` is a thin layer on it.
//
// Each step: N sentences are tokenised once and stacked V times (z1, z2 with dropout; z0 without,
// for the off-dropout objectives) into one encoder pass of V·N rows with the per-row dropout switch;
// CLS + MLP pooling; the objective's loss and gradient; backward through all views; grad-norm
// clipping; AdamW with linear decay. Dropout masks are Philox(seed, step, site, element), the data
// order is a seeded shuffle per epoch, and checkpoints hold parameters, moments, step and data
// position, so a resumed run ends with the same weights, bit for bit on CPU, as an uninterrupted one.
import { existsSync } from 'node:fs'
import { appendFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { addon } from '../native.js'
import { namedConfig, type BertConfig, type NamedConfig } from '../bert-config.js'
import { BertModel } from '../model/bert.js'
import { Tokenizer } from '../tokenizer.js'
import { Tensor, type Device } from '../tensor.js'
import { AdamW, clipGradNorm, linearSchedule } from '../optim/adamw.js'
import { BatchStream, SentenceFile } from '../data/sentences.js'
import { evaluateSts, readStsFile, type StsPair } from '../eval/sts.js'
import { lossCurveSvg } from './plot.js'
import { alignment, uniformity } from './batch-metrics.js'
import { findCheckpoint, loadCheckpoint, saveCheckpoint, type CheckpointState } from './checkpoint.js'
import { OBJECTIVES, keepRowsFor, objectiveLoss, viewCount, type Objective } from './objective.js'
import { writeSentenceTransformersFiles } from './sentence-transformers.js'
import { buildVocab, writeVocab } from './vocab.js'

export interface TrainOptions {
  /** A Hugging Face BERT/RoBERTa directory to start from... */
  model?: string
  /** ...or a named size (or full config) to initialise randomly. */
  config?: NamedConfig | BertConfig
  /** Tokenizer directory or file (tokenizer.json / vocab.txt); default: the model's, or one built from the data. */
  tokenizer?: string
  /** One sentence per line, UTF-8. */
  data: string
  objective?: Objective
  temperature?: number
  posScale?: number
  dclWeight?: number
  dclTemperature?: number
  /** Overrides the model's hidden and attention dropout probabilities. */
  dropout?: number
  batchSize?: number
  maxLen?: number
  lr?: number
  epochs?: number
  /** Stop after this many steps (0 writes the initialised model). Default: epochs over the data. */
  steps?: number
  warmup?: number
  weightDecay?: number
  gradClip?: number
  seed?: number
  device?: 'auto' | Device
  /** STS files (STS-B, SICK, STS12–16) evaluated every evalEvery steps; the first selects the best model. */
  evalFiles?: string[]
  evalEvery?: number
  out: string
  saveEvery?: number
  /** Continue from this output (or checkpoint) directory. */
  resume?: string
  /** Vocabulary size when the tokenizer is built from the data. */
  vocabSize?: number
  /** Sentence vector under the MLP head and at evaluation: 'cls' (SimCSE) or 'mean' over tokens. */
  pooling?: 'cls' | 'mean'
}

export interface StepInfo {
  type: 'step'
  step: number
  totalSteps: number
  epoch: number
  loss: number
  parts: Record<string, number>
  lr: number
  gradNorm: number
  sentencesPerSecond: number
  alignment: number
  uniformity: number
  elapsedSeconds: number
}

export interface EvalInfo {
  type: 'eval'
  step: number
  results: { file: string; pairs: number; spearman: number }[]
  average: number
  /** STS of the first eval file: the model-selection metric. */
  spearman: number
  best: boolean
}

export interface TrainHooks {
  onStep?(info: StepInfo): void
  onEval?(info: EvalInfo): void
  /** Human-readable notes (resuming, saving, device fallbacks). */
  onMessage?(text: string): void
  /** Stops the run after the current step, writing a checkpoint first (the CLI wires it to Ctrl-C). */
  signal?: AbortSignal
}

export interface TrainResult {
  out: string
  steps: number
  history: (StepInfo | EvalInfo)[]
  best: { step: number; spearman: number } | null
  /** The run was stopped by the signal; continue it with resume: out. */
  interrupted: boolean
}

type Resolved = Required<Omit<TrainOptions, 'model' | 'config' | 'tokenizer' | 'steps' | 'resume' | 'dropout' | 'evalFiles'>> &
  Pick<TrainOptions, 'model' | 'config' | 'tokenizer' | 'steps' | 'resume' | 'dropout'> & { evalFiles: string[] }

// The recipe of METHOD.md §6.
const DEFAULTS = {
  objective: 'simcse++' as Objective, temperature: 0.05, posScale: 1, dclWeight: 0.1, dclTemperature: 5, batchSize: 64, maxLen: 32,
  lr: 3e-5, epochs: 1, warmup: 0, weightDecay: 0, gradClip: 1, seed: 42, device: 'auto' as const, evalEvery: 125, saveEvery: 250,
  vocabSize: 8000, pooling: 'cls' as 'cls' | 'mean',
}

// Options a resumed run must share with the original (anything else, like saveEvery, may change).
const FIXED_ON_RESUME = ['data', 'objective', 'temperature', 'posScale', 'dclWeight', 'dclTemperature', 'dropout', 'batchSize', 'maxLen',
  'lr', 'epochs', 'steps', 'warmup', 'weightDecay', 'gradClip', 'seed', 'pooling'] as const

function resolve(o: TrainOptions): Resolved {
  if (!o || typeof o !== 'object') throw new TypeError('train: options must be an object')
  const known = new Set([...Object.keys(DEFAULTS), 'model', 'config', 'tokenizer', 'data', 'dropout', 'steps', 'evalFiles', 'out', 'resume'])
  for (const k of Object.keys(o)) if (!known.has(k)) throw new TypeError(`train: unknown option '${k}'`)
  const r = { ...DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as Resolved
  r.evalFiles = o.evalFiles ?? []
  if (!r.out) throw new TypeError('train: option out (the output directory) is required')
  if (!r.data) throw new TypeError('train: option data (a file of sentences) is required')
  if (r.model && r.config) throw new TypeError('train: give either model (a directory) or config (a named size), not both')
  if (!OBJECTIVES.includes(r.objective)) throw new TypeError(`train: objective must be one of ${OBJECTIVES.join(', ')} (got ${r.objective})`)
  const positive = ['temperature', 'dclTemperature', 'lr', 'gradClip'] as const
  for (const k of positive) if (!(typeof r[k] === 'number' && r[k] > 0)) throw new RangeError(`train: ${k} must be a number > 0 (got ${r[k]})`)
  const ints = ['batchSize', 'maxLen', 'epochs', 'warmup', 'evalEvery', 'saveEvery', 'seed', 'vocabSize'] as const
  for (const k of ints) if (!Number.isSafeInteger(r[k]) || r[k] < 0) throw new RangeError(`train: ${k} must be a non-negative integer (got ${r[k]})`)
  if (r.batchSize < 2) throw new RangeError('train: batchSize must be at least 2 (contrastive losses need in-batch negatives)')
  if (r.maxLen < 3) throw new RangeError('train: maxLen must be at least 3')
  if (r.steps !== undefined && (!Number.isSafeInteger(r.steps) || r.steps < 0)) throw new RangeError(`train: steps must be a non-negative integer (got ${r.steps})`)
  if (r.dropout !== undefined && !(r.dropout >= 0 && r.dropout < 1)) throw new RangeError(`train: dropout must be in [0, 1) (got ${r.dropout})`)
  if (r.pooling !== 'cls' && r.pooling !== 'mean') throw new TypeError(`train: pooling must be cls or mean (got ${r.pooling})`)
  if (!['auto', 'cpu', 'cuda'].includes(r.device)) throw new TypeError(`train: device must be auto, cpu or cuda (got ${r.device})`)
  return r
}

function pickDevice(requested: 'auto' | Device, say: (s: string) => void): Device {
  // The encoder's ops run on the CPU backend; their CUDA kernels are the next piece of work.
  if (requested === 'cuda') throw new Error('train: --device cuda is not available yet: the encoder runs on the CPU backend (the loss kernels have CUDA versions)')
  if (requested === 'auto' && addon.cudaStatus().available) say('CUDA is available, but the encoder runs on the CPU backend for now: training on CPU')
  return 'cpu'
}

async function loadTokenizer(o: Resolved, file: SentenceFile, out: string, say: (s: string) => void): Promise<Tokenizer> {
  if (o.tokenizer) return Tokenizer.load(o.tokenizer)
  if (o.model) return Tokenizer.load(o.model)
  if (o.resume && existsSync(join(o.resume, 'vocab.txt'))) return Tokenizer.load(join(o.resume, 'vocab.txt'))
  // No tokenizer given for a model from scratch: a WordPiece vocabulary from (a sample of) the data.
  const sample = await file.readLines(Array.from({ length: Math.min(file.count, 200_000) }, (_, i) => i))
  const vocab = buildVocab(sample, o.vocabSize)
  await mkdir(out, { recursive: true })
  const path = join(out, 'vocab.txt')
  await writeVocab(path, vocab)
  say(`built a ${vocab.length}-token WordPiece vocabulary from the training data (${path})`)
  return Tokenizer.load(path)
}

function configWithDropout(c: BertConfig, dropout: number | undefined): BertConfig {
  return dropout === undefined ? c : { ...c, hiddenDropoutProb: dropout, attentionProbsDropoutProb: dropout }
}

export async function train(options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const o = resolve(options)
  const say = (s: string) => hooks.onMessage?.(s)
  const out = o.out
  const resumeFrom = o.resume ? findCheckpoint(o.resume) : null
  if (o.resume && !resumeFrom) throw new Error(`--resume ${o.resume}: no checkpoint there (it is written every saveEvery steps into <out>/checkpoint)`)
  const device = pickDevice(o.device, say)
  const file = await SentenceFile.open(o.data)
  if (file.count < 2) throw new Error(`${o.data}: at least 2 sentences are needed (found ${file.count})`)
  const tokenizer = await loadTokenizer(o, file, out, say)
  const evalSets: { file: string; pairs: StsPair[] }[] = []
  for (const f of o.evalFiles) evalSets.push({ file: f, pairs: await readStsFile(f) })

  // The model, from a checkpoint directory, a pretrained directory, or a named config.
  let model: BertModel
  if (o.model) model = await BertModel.load(o.model, { device, mlp: true, seed: o.seed })
  else {
    const base = typeof o.config === 'object' ? o.config : namedConfig(o.config ?? 'mini', tokenizer.vocabSize)
    model = BertModel.create(base, { device, mlp: true, seed: o.seed })
  }
  if (model.config.vocabSize < tokenizer.vocabSize) throw new Error(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary only ${model.config.vocabSize}`)
  if (o.dropout !== undefined) {
    const c = configWithDropout(model.config, o.dropout)
    Object.assign(model.config, c)
  }
  const maxLen = Math.min(o.maxLen, model.config.maxPositionEmbeddings - (model.config.modelType === 'roberta' ? model.config.padTokenId + 1 : 0))
  const batchesPerEpoch = BatchStream.batchesPerEpoch(file.count, o.batchSize)
  const totalSteps = o.steps ?? batchesPerEpoch * o.epochs
  const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: o.lr, weightDecay: o.weightDecay })

  let startStep = 0, elapsedBefore = 0
  let best: CheckpointState['best'] = null
  let dataStart: unknown = undefined
  const runOptions = Object.fromEntries(FIXED_ON_RESUME.map((k) => [k, o[k] ?? null]))
  if (resumeFrom) {
    const ck = await loadCheckpoint(resumeFrom)
    for (const k of FIXED_ON_RESUME) {
      const was = ck.state.options[k], now = runOptions[k]
      const norm = (v: unknown) => (k === 'data' && typeof v === 'string' ? basename(v) : v)
      if (JSON.stringify(norm(was)) !== JSON.stringify(norm(now))) throw new Error(`--resume: option ${k} was ${JSON.stringify(was)} in the checkpointed run, now ${JSON.stringify(now)}`)
    }
    if (ck.params.length !== model.layout.total) throw new Error(`--resume: the checkpoint holds ${ck.params.length} parameters, this model ${model.layout.total}`)
    model.params.copyFrom(ck.params)
    opt.loadState({ step: ck.state.step, m: ck.adamM, v: ck.adamV })
    startStep = ck.state.step
    dataStart = ck.state.dataPosition
    best = ck.state.best
    elapsedBefore = ck.state.elapsedSeconds
    say(`resuming from ${resumeFrom} at step ${startStep} of ${totalSteps}`)
  }
  const stream = new BatchStream(file, { batchSize: o.batchSize, seed: o.seed, start: dataStart as never })

  await mkdir(out, { recursive: true })
  const logPath = join(out, 'train.jsonl')
  const history = await openLog(logPath, startStep)
  const log = async (entry: StepInfo | EvalInfo) => {
    history.push(entry)
    await appendFile(logPath, JSON.stringify(entry) + '\n')
  }
  await writeFile(join(out, 'training_args.json'), JSON.stringify({ ...o, totalSteps, device, vocabSize: tokenizer.vocabSize }, null, 2) + '\n')

  const embedFn = async (sentences: string[]) => {
    const vecs: Float32Array[] = []
    for (let i = 0; i < sentences.length; i += 128) {
      const enc = await tokenizer.encodeBatch(sentences.slice(i, i + 128), { maxLength: maxLen })
      const z = model.embed(enc, o.pooling)
      const flat = z.toFloat32Array()
      z.dispose()
      const h = model.config.hiddenSize
      for (let r = 0; r < enc.shape[0]; r++) vecs.push(flat.slice(r * h, (r + 1) * h))
    }
    return vecs
  }
  const saveModel = async () => {
    await model.save(out)
    await tokenizer.save(out)
    await writeSentenceTransformersFiles(out, model.config.hiddenSize, maxLen, o.pooling)
  }
  const evaluate = async (step: number) => {
    const results: EvalInfo['results'] = []
    for (const set of evalSets) {
      const r = await evaluateSts(embedFn, set.pairs)
      results.push({ file: set.file, pairs: r.pairs, spearman: r.spearman })
    }
    const average = results.reduce((a, r) => a + r.spearman, 0) / results.length
    const spearman = results[0].spearman
    const isBest = !best || spearman > best.spearman
    if (isBest) {
      best = { step, spearman }
      await saveModel()
    }
    const info: EvalInfo = { type: 'eval', step, results, average, spearman, best: isBest }
    await log(info)
    hooks.onEval?.(info)
  }

  if (evalSets.length && startStep === 0 && o.evalEvery > 0) await evaluate(0) // the untrained baseline
  const V = viewCount(o.objective)
  const H = model.config.hiddenSize
  const grad = Tensor.zeros([V * o.batchSize * H], device)
  const loopStart = performance.now()
  for (let step = startStep; step < totalSteps; step++) {
    const t0 = performance.now()
    const { sentences, epoch } = await stream.next()
    const n = sentences.length
    const enc = await tokenizer.encodeBatch(sentences, { maxLength: maxLen })
    const batch = stack(enc, V)
    const z = model.trainForward(batch, { seed: o.seed, step, keepRows: keepRowsFor(o.objective, n), pooling: o.pooling })
    const g = grad.view(0, [V * n, H])
    const { loss, parts } = objectiveLoss(o, z, g, n)
    if (!Number.isFinite(loss)) throw new Error(`step ${step}: the loss is ${loss}; the last checkpoint is in ${join(out, 'checkpoint')}`)
    const zHost = z.toFloat32Array()
    model.zeroGrad()
    model.trainBackward(g)
    const gradNorm = clipGradNorm(model.grads, o.gradClip)
    const lr = linearSchedule(o.lr, step, totalSteps, o.warmup)
    opt.stepWith(lr)
    const seconds = (performance.now() - t0) / 1000
    const info: StepInfo = {
      type: 'step', step: step + 1, totalSteps, epoch, loss, parts, lr, gradNorm,
      sentencesPerSecond: n / seconds,
      alignment: alignment(zHost.subarray(0, n * H), zHost.subarray(n * H, 2 * n * H), n, H),
      uniformity: uniformity(zHost.subarray((V - 1) * n * H, V * n * H), n, H),
      elapsedSeconds: elapsedBefore + (performance.now() - loopStart) / 1000,
    }
    await log(info)
    hooks.onStep?.(info)
    const done = step + 1
    if (evalSets.length && o.evalEvery > 0 && (done % o.evalEvery === 0 || done === totalSteps)) await evaluate(done)
    const stop = hooks.signal?.aborted === true && done < totalSteps
    if ((o.saveEvery > 0 && done % o.saveEvery === 0) || done === totalSteps || stop) {
      await saveCheckpoint(out, {
        params: model.params.toFloat32Array(), adamM: opt.m.toFloat32Array(), adamV: opt.v.toFloat32Array(),
        state: { step: done, dataPosition: stream.position, seed: o.seed, best, options: runOptions, elapsedSeconds: info.elapsedSeconds },
      })
    }
    if (stop) {
      say(`stopped after step ${done} of ${totalSteps}; checkpoint written: continue with --resume ${out}`)
      grad.dispose()
      await file.close()
      model.dispose()
      opt.dispose()
      return { out, steps: done, history, best, interrupted: true }
    }
  }
  grad.dispose()
  // Without evaluation the final weights are the result; with it, the best ones already are in out/.
  if (!evalSets.length || o.evalEvery === 0 || !best) await saveModel()
  const steps = history.filter((h) => h.type === 'step') as StepInfo[]
  const evals = history.filter((h) => h.type === 'eval') as EvalInfo[]
  await writeFile(join(out, 'metrics.json'), JSON.stringify({ best, evals, lastStep: steps.at(-1) ?? null }, null, 2) + '\n')
  await writeAtomically(join(out, 'loss_curve.svg'), lossCurveSvg(mergeHistory(steps, evals)))
  await file.close()
  model.dispose()
  opt.dispose()
  return { out, steps: totalSteps, history, best, interrupted: false }
}

/** The tokenised batch stacked V times: rows [x; x; x] for the views z1, z2, z0. */
function stack(enc: { inputIds: Int32Array; attentionMask: Int32Array; tokenTypeIds: Int32Array; shape: [number, number] }, V: number) {
  const rep = (a: Int32Array) => {
    const out = new Int32Array(a.length * V)
    for (let v = 0; v < V; v++) out.set(a, v * a.length)
    return out
  }
  return { inputIds: rep(enc.inputIds), attentionMask: rep(enc.attentionMask), tokenTypeIds: rep(enc.tokenTypeIds), shape: [enc.shape[0] * V, enc.shape[1]] }
}

/** Reads the log of a resumed run, dropping entries past the checkpoint's step (they will be redone). */
async function openLog(path: string, keepUpToStep: number): Promise<(StepInfo | EvalInfo)[]> {
  if (!existsSync(path)) return []
  if (keepUpToStep === 0) {
    await writeFile(path, '')
    return []
  }
  const kept: (StepInfo | EvalInfo)[] = []
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    if (!line.trim()) continue
    try {
      const e = JSON.parse(line)
      if (e.step <= keepUpToStep) kept.push(e)
    } catch {
      // A line cut by a kill: dropped.
    }
  }
  await writeAtomically(path, kept.map((e) => JSON.stringify(e) + '\n').join(''))
  return kept
}

async function writeAtomically(path: string, text: string) {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, text)
  await rename(tmp, path)
}

function mergeHistory(steps: StepInfo[], evals: EvalInfo[]) {
  const rows: { step: number; loss: number; lossParts?: Record<string, number>; sts?: number }[] = steps.map((s) => ({ step: s.step, loss: s.loss, lossParts: s.parts }))
  for (const e of evals) rows.push({ step: e.step, loss: NaN, sts: e.spearman })
  return rows.sort((a, b) => a.step - b.step)
}

