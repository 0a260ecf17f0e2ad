// `npx simcsepp train` with no arguments: train a tiny BERT from scratch with SimCSE++ on WordNet's
// example sentences (they come with the install), and show what changed:
//   - retrieval over held-out word senses: for each held-out sense, its first example is the query
//     and its second the answer among all held-out answers (recall@1, MRR), before and after;
//   - nearest neighbours of a few held-out sentences, before and after;
//   - the retrieval score at a few points during training (the SimCSE++ loss of a model this small
//     settles within a few dozen steps while the vectors keep improving, so the loss alone shows no
//     progress): the run stops at each point (a checkpoint), is scored from it and resumes, which ends
//     with the same weights as a run that never stopped.
// Everything is written to ./simcsepp-demo (the model loads with SentenceTransformer and AutoModel; the
// training sentences, results and run state are in simcsepp-demo/run/).
// This module computes; `simcsepp train` without options (lib/cli/demo-command.ts) prints.
import { existsSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { namedConfig, type NamedConfig } from '../model/config.js'
import { BertModel } from '../model/bert.js'
import { Tokenizer } from '../tokenizer.js'
import type { DeviceRequest } from '../device.js'
import { train, type TrainHooks, type TrainResult } from '../train/train.js'
import { modelEmbedder } from '../train/evaluation.js'
import { loadCheckpoint, readCheckpointTensors } from '../train/checkpoint.js'
import { RUN_FILES, ensureWritableDirectory } from '../train/out-dir.js'
import { findRunFile, runPath, RUN_STATE_DIR } from '../train/run-layout.js'
import { buildVocab, writeVocab } from '../train/vocab.js'
import { writeFileAtomic } from '../util/atomic-write.js'
import { dot, normalizeRows } from '../util/vectors.js'
import { wordnetExamples, type Example } from './wordnet.js'

export interface DemoOptions {
  out?: string
  steps?: number
  seed?: number
  config?: NamedConfig
  device?: DeviceRequest
  /** Held-out senses for the retrieval score. Default 500. */
  heldOut?: number
  /** Score the held-out retrieval every this many steps during training. Default: a quarter of the steps; 0: only before and after. */
  retrievalEvery?: number
}

/** What the demo is about to train, for the caller to announce. */
export interface DemoPlan {
  config: NamedConfig
  steps: number
  trainSentences: number
  queries: number
}

export interface DemoHooks extends TrainHooks {
  /** Called once the data is split and the vocabulary built, before training. */
  onPlan?(plan: DemoPlan): void
  /** The held-out retrieval score at a step during training (every retrievalEvery steps). */
  onRetrieval?(score: StepRetrievalScore): void
}

export interface RetrievalScore {
  recallAt1: number
  mrr: number
}

export type StepRetrievalScore = RetrievalScore & { step: number }

/** A held-out query's nearest answers (cosine, best first) before and after training. */
export interface NeighbourExample {
  query: string
  answer: string
  before: { score: number; text: string }[]
  after: { score: number; text: string }[]
}

export interface DemoResult {
  out: string
  before: RetrievalScore
  /** null when training was interrupted (it resumes with `simcsepp train --resume`). */
  after: RetrievalScore | null
  trainSentences: number
  queries: number
  steps: number
  /** The retrieval score during training, every retrievalEvery steps (before the last). */
  progress: StepRetrievalScore[]
  /** Nearest neighbours of the first three held-out queries. */
  examples: NeighbourExample[]
  training: TrainResult
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const a = xs.slice()
  let s = seed >>> 0 || 1
  for (let i = a.length - 1; i > 0; i--) {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    const j = s % (i + 1)
    ;[a[i], a[j]] = [a[j], a[i]]
  }
  return a
}

/** Held-out senses with two examples each (query, answer); every other example is training data. */
export function splitExamples(examples: Example[], heldOut: number, seed: number) {
  const bySense = new Map<string, string[]>()
  for (const e of examples) {
    const list = bySense.get(e.synset) ?? []
    if (!list.includes(e.text)) list.push(e.text)
    bySense.set(e.synset, list)
  }
  const candidates = shuffled(
    [...bySense.entries()].filter(([, l]) => l.length >= 2),
    seed,
  ).slice(0, heldOut)
  const held = new Set(candidates.map(([k]) => k))
  const queries = candidates.map(([, l]) => l[0])
  const answers = candidates.map(([, l]) => l[1])
  const heldText = new Set(candidates.flatMap(([, l]) => l))
  const train = [...new Set(examples.filter((e) => !held.has(e.synset) && !heldText.has(e.text)).map((e) => e.text))]
  return { train: shuffled(train, seed + 1), queries, answers }
}

/** Unit-length sentence vectors (mean pooling), as the retrieval compares them. */
async function embedAll(model: BertModel, tok: Tokenizer, sentences: string[], maxLength: number): Promise<Float32Array[]> {
  const vectors = await modelEmbedder(model, tok, maxLength, 'mean')(sentences)
  for (const v of vectors) normalizeRows(v, v.length)
  return vectors
}

export function retrieval(q: Float32Array[], a: Float32Array[]): RetrievalScore {
  let hits = 0,
    rr = 0
  q.forEach((qi, i) => {
    const target = dot(qi, a[i])
    const rank = 1 + a.reduce((n, aj, j) => n + (j !== i && dot(qi, aj) > target ? 1 : 0), 0)
    if (rank === 1) hits++
    rr += 1 / rank
  })
  return { recallAt1: (100 * hits) / q.length, mrr: rr / q.length }
}

function neighbours(q: Float32Array, a: Float32Array[], texts: string[], k: number): { score: number; text: string }[] {
  return a
    .map((v, j) => [dot(q, v), j] as [number, number])
    .sort((x, y) => y[0] - x[0])
    .slice(0, k)
    .map(([score, j]) => ({ score, text: texts[j] }))
}

async function embedPairs(model: BertModel, tok: Tokenizer, queries: string[], answers: string[], maxLen: number) {
  try {
    return { q: await embedAll(model, tok, queries, maxLen), a: await embedAll(model, tok, answers, maxLen) }
  } finally {
    model.dispose()
  }
}

export async function runDemo(o: DemoOptions = {}, hooks: DemoHooks = {}): Promise<DemoResult> {
  const out = resolve(o.out ?? 'simcsepp-demo')
  const seed = o.seed ?? 42
  const { train: sentences, queries, answers } = splitExamples(wordnetExamples(), o.heldOut ?? 500, seed)
  // A demo directory is the demo's own to redo; any other run in `out` is never touched.
  ensureWritableDirectory(out)
  // The demo's own files are run state (run/; at the top in demo directories from before run/ existed).
  const previousDemo = ['demo-results.json', 'train-sentences.txt'].some((f) => existsSync(findRunFile(out, f)))
  const otherRun = RUN_FILES.filter((f) => existsSync(join(out, f)))
  if (otherRun.length && !previousDemo) {
    throw new Error(
      `${out} already holds a training run (${otherRun.join(', ')}) that is not the demo's: choose another --out for the demo`,
    )
  }
  for (const f of ['demo-results.json', 'train-sentences.txt']) await rm(join(out, f), { force: true })
  await mkdir(join(out, RUN_STATE_DIR), { recursive: true })
  const dataFile = runPath(out, 'train-sentences.txt')
  await writeFileAtomic(dataFile, sentences.join('\n') + '\n')
  const vocabFile = join(out, 'vocab.txt')
  await writeVocab(vocabFile, buildVocab(sentences, 8000))
  const tok = await Tokenizer.load(vocabFile)
  const config = o.config ?? 'tiny'
  const maxLen = 32
  const steps = o.steps ?? 200
  hooks.onPlan?.({ config, steps, trainSentences: sentences.length, queries: queries.length })

  const before = await embedPairs(BertModel.create(namedConfig(config, tok.vocabSize), { seed }), tok, queries, answers, maxLen)
  const options = {
    config,
    tokenizer: vocabFile,
    data: dataFile,
    out,
    steps,
    seed,
    device: o.device,
    // From scratch, a tiny model needs a larger step size than fine-tuning BERT (3e-5), and its CLS
    // vector starts out nearly the same for every sentence: mean pooling sees the words at once.
    lr: 1e-3,
    warmup: Math.floor(steps / 10),
    saveEvery: 100,
    evalEvery: 0,
    pooling: 'mean' as const,
  }
  const every = o.retrievalEvery ?? Math.floor(steps / 4)
  if (!Number.isSafeInteger(every) || every < 0) throw new Error(`demo: retrievalEvery must be an integer >= 0, got ${every}`)
  const stops: number[] = []
  for (let s = every; every > 0 && s < steps; s += every) stops.push(s)
  const progress: StepRetrievalScore[] = []
  let training: TrainResult | undefined
  for (const stopAt of [...stops, steps]) {
    // Runs to `stopAt` (a checkpoint), then resumes from it; the caller's signal (Ctrl-C) still stops the run.
    const pause = new AbortController()
    const resuming = training !== undefined
    training = await train(resuming ? { ...options, resume: out } : { ...options, overwrite: previousDemo && otherRun.length > 0 }, {
      ...hooks,
      signal: hooks.signal ? AbortSignal.any([hooks.signal, pause.signal]) : pause.signal,
      onStep(s) {
        hooks.onStep?.(s)
        if (s.step === stopAt && stopAt < steps) pause.abort()
      },
      // The notes of the demo's own pauses and resumes are not the user's business; a Ctrl-C's are.
      onMessage(m) {
        if (hooks.signal?.aborted || (!resuming && !pause.signal.aborted)) hooks.onMessage?.(m)
      },
    })
    if (training.interrupted && hooks.signal?.aborted) break
    if (stopAt === steps) break
    const ck = await loadCheckpoint(out)
    const model = BertModel.create(namedConfig(config, tok.vocabSize), { seed, mlp: true })
    await readCheckpointTensors(ck, { params: model.params })
    const now = await embedPairs(model, tok, queries, answers, maxLen)
    const score = { step: stopAt, ...retrieval(now.q, now.a) }
    progress.push(score)
    hooks.onRetrieval?.(score)
  }
  if (!training) throw new Error('demo: no training ran')
  const result: DemoResult = {
    out,
    before: retrieval(before.q, before.a),
    after: null,
    trainSentences: sentences.length,
    queries: queries.length,
    steps,
    progress,
    examples: [],
    training,
  }
  if (training.interrupted) return result
  const after = await embedPairs(await BertModel.load(out), tok, queries, answers, maxLen)
  result.after = retrieval(after.q, after.a)
  result.examples = [0, 1, 2].map((i) => ({
    query: queries[i],
    answer: answers[i],
    before: neighbours(before.q[i], before.a, answers, 3),
    after: neighbours(after.q[i], after.a, answers, 3),
  }))
  const summary = {
    out,
    before: result.before,
    progress: result.progress,
    after: result.after,
    trainSentences: result.trainSentences,
    queries: result.queries,
  }
  await writeFileAtomic(runPath(out, 'demo-results.json'), JSON.stringify(summary, null, 2) + '\n')
  return result
}
