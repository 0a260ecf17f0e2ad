// One optimizer step: N sentences tokenised once and stacked V times (z1, z2 with dropout; z0 without,
// for the off-dropout objectives) into one encoder pass of V·N rows with the per-row dropout switch;
// CLS + MLP pooling; the objective's loss and gradient into a buffer allocated once; backward through
// all views; grad-norm clipping; AdamW with linear decay. Dropout masks are Philox(seed, step, site,
// element), so a step depends only on the weights, the step number and its sentences.
//
// Across R ranks (a Communicator): every rank tokenises the whole global batch (the same padded length,
// so the dropout masks line up) and encodes only its slice of sentences in each view, in one pass whose
// rows draw the masks of their places in the whole batch (a RowPlacement); the vectors are all-gathered
// view by view, every rank computes the loss over the whole batch, back-propagates its own rows, and the
// parameter gradients are summed over the ranks before clipping and AdamW. So R ranks compute the step of
// one process, up to the order of the sums.
//
// On CUDA, a step replayed as a graph does not wait for the GPU: launch() returns once the step is queued,
// and its numbers are read later (LaunchedStep.result()). A training loop launches step t+1 before it reads
// step t, so the GPU runs step t while the host logs and tokenises the next batch. At most one step is
// left unread when another is launched; an eager step, and anything that reads the weights, first reads
// every step in flight. Ranks replay graphs holding their NCCL collectives, but read each step before the
// next (launchesAhead): their host-side collectives (the stop flag) must not overtake the GPU's.
import type { EncodedBatch, Tokenizer } from '../tokenizer.js'
import type { BertModel } from '../model/bert.js'
import { Tensor, type Device } from '../tensor.js'
import { type AdamW, checkedNorm, clipGradScale, scheduledLr } from '../optim/adamw.js'
import * as ops from '../ops.js'
import { StepGraphs, type BoundArrays } from '../model/step-graphs.js'
import type { BatchStream } from '../data/sentences.js'
import { alignment, METRIC_SENTENCES, uniformityFromGram } from './batch-metrics.js'
import { linearForward } from '../ops.js'
import { keepRowsFor, viewCount, type BatchTargets } from './objective.js'
import { StepObjective, type StepLoss } from './matryoshka.js'
import { matryoshkaPlan } from './matryoshka-options.js'
import type { ResolvedTrainOptions } from './options.js'
import type { StepInfo } from './events.js'
import type { Communicator } from '../distributed/communicator.js'
import { PassLayout } from './pass-layout.js'

/** A step's sizes: sentences per step (at most), tokens per sentence, and the run's length. */
export interface StepShape {
  batch: number
  maxLen: number
  totalSteps: number
  /** Rows per encoder pass (chooseMicroBatch); 0 or absent: the whole batch at once. */
  microBatch?: number
  /** Supervised data: 2 (pairs), 3 (triplets) or 2 + k (k hard negatives) columns, one view each; absent for plain text. */
  columns?: number
}

/** A checkpoint of the run, named when the loss diverges. */
export interface CheckpointRef {
  dir: string
  step: number
}

/** A launched step: result() waits for its numbers (the first call; later calls return or throw the same). */
export interface LaunchedStep {
  readonly step: number
  result(): StepInfo
}

/** A launched step's numbers, or what made it fail; absent until read. */
type Outcome = { info: StepInfo } | { error: unknown }

export class TrainingStep {
  /** Launched graph steps whose numbers are not read yet, oldest first (at most 2). */
  private readonly unread: PendingGraphStep[] = []
  /** When the last step's numbers were read (performance.now()): a step's time starts no earlier. */
  private lastDone = 0
  private readonly views: number
  /** dL/dz of the largest batch, [V·batch·H]; each step uses a view of it. */
  private readonly grad: Tensor
  /** With micro-batches or ranks: the whole batch's vectors, gathered pass by pass (and rank by rank). */
  private readonly zAll: Tensor | null
  /** With ranks: dL/dz of a pass's rows, gathered from their places in the whole batch's. */
  private readonly passGrad: Tensor | null
  /** The Gram matrix of the metric sample's dropout-free (last) view, [S, S] on the step's device. */
  private readonly gram: Tensor
  /** The run's objective over the vectors (with Matryoshka dimensions, its scratch). */
  private readonly objective: StepObjective
  /**
   * The gradient clipping factor (clipGradScale), [1] on the step's device: AdamW multiplies the gradients
   * by it as it updates, which saves a pass that would scale them in place first (same bits).
   */
  private readonly clipScale: Tensor
  /**
   * On CUDA, a step of one encoder pass runs as one CUDA graph per padded batch shape (lib/model/step-graphs.ts;
   * bit-identical to the eager step), on ranks too when their collectives go through NCCL.
   * SIMCSEPP_CUDA_GRAPHS=0 turns them off, to compare or to debug.
   */
  private readonly stepGraphs: StepGraphs | null
  /** Per graph shape: the vectors z of the captured step (an arena view), read after each replay. */
  private readonly graphZ = new Map<string, Tensor>()
  /** Per graph shape, on ranks: the bytes its collectives carry (counted at the eager step). */
  private readonly graphBytes = new Map<string, number>()

  constructor(
    private readonly model: BertModel,
    private readonly opt: AdamW,
    private readonly tokenizer: Tokenizer,
    private readonly o: ResolvedTrainOptions,
    private readonly shape: StepShape,
    device: Device,
    /** The ranks of a data-parallel run (null: this process alone). */
    private readonly comm: Communicator | null = null,
    /** Distillation: the teacher's vectors of a batch's (first column's) sentences, [N, H] row-major. */
    private readonly teacher: ((sentences: string[]) => Promise<Float32Array>) | null = null,
  ) {
    this.views = viewCount(o.objective, shape.columns)
    this.grad = Tensor.zeros([this.views * shape.batch * model.embeddingDim], device)
    const rows = this.views * shape.batch
    const micro = shape.microBatch ?? 0
    const ranks = comm?.size ?? 1
    this.zAll = ranks > 1 || (micro > 0 && micro < rows) ? Tensor.zeros([rows * model.embeddingDim], device) : null
    const perRank = this.views * Math.ceil(shape.batch / ranks)
    this.passGrad = ranks > 1 ? Tensor.zeros([perRank * model.embeddingDim], device) : null
    const S = Math.min(shape.batch, METRIC_SENTENCES)
    this.gram = Tensor.zeros([S * S], device)
    this.clipScale = Tensor.zeros([1], device)
    const H = model.embeddingDim
    this.objective = new StepObjective(o, matryoshkaPlan(o.matryoshkaDims, o.matryoshkaWeights, H), rows, H, device)
    const graphs = device === 'cuda' && process.env.SIMCSEPP_CUDA_GRAPHS !== '0'
    this.stepGraphs = graphs ? new StepGraphs(1 + 3 * model.config.numHiddenLayers) : null
  }

  /**
   * Whether launch() can return before the GPU has run the step (CUDA graphs in one process; ranks meet in
   * MPI collectives on the host between steps, which must come after their GPU's collectives).
   */
  get launchesAhead(): boolean {
    return this.stepGraphs !== null && (this.comm?.size ?? 1) === 1
  }

  /**
   * Trains on the stream's next batch as step `step` (0-based) and returns its numbers; `elapsed` gives the
   * run's training seconds so far. Throws when training diverged (non-finite vectors or loss), naming
   * `lastCheckpoint` (null: none yet).
   */
  async run(step: number, stream: BatchStream, elapsed: () => number, lastCheckpoint: CheckpointRef | null): Promise<StepInfo> {
    const launched = await this.launch(step, stream, elapsed, lastCheckpoint)
    this.drain()
    return launched.result()
  }

  /**
   * Starts step `step` on the stream's next batch. A replayed CUDA graph returns once it is queued; any
   * other step has run when this returns. Steps launched earlier and not read yet are read first when
   * this one runs eagerly, or when one is still unread besides the newest (their errors are thrown here).
   */
  async launch(step: number, stream: BatchStream, elapsed: () => number, lastCheckpoint: CheckpointRef | null): Promise<LaunchedStep> {
    const { model, o } = this
    const { maxLen, totalSteps } = this.shape
    const V = this.views,
      H = model.embeddingDim
    const launched = performance.now()
    const { sentences, epoch, columns, scores } = await stream.next()
    // Distillation: what the teacher makes of the batch's sentences (of parallel pairs, the first of each).
    const targets = this.teacher ? await this.teacher(columns ? columns[0] : sentences) : undefined
    const bytesBefore = this.comm && this.comm.size > 1 ? this.comm.bytes : 0
    this.comm?.takeSeconds()
    const n = sentences.length
    const batch = await tokeniseViews(this.tokenizer, columns ? withPrompts(columns, o) : [sentences], V, maxLen)
    const keepRows = keepRowsFor(o.objective, n, this.shape.columns)
    // Distillation teaches the pooled vector itself (the saved model's), not the MLP head's.
    const forward = { seed: o.seed, step, pooling: o.pooling, ...(o.objective === 'distill' ? { mlp: false } : {}) }
    // This process's rows of the V·n stacked ones, in passes (PassLayout: all rows, or a rank's sentences of
    // every view; micro-batches split them). With one pass, its activations stay for the backward; with
    // several, pass 1 gathers every row's vector, the loss runs over the whole batch, and pass 2 re-runs each
    // pass (the same dropout masks) and back-propagates its rows of dL/dz; parameter gradients accumulate.
    const rows = V * n
    const comm = this.comm && this.comm.size > 1 ? this.comm : null
    const layout = new PassLayout(V, n, comm, this.shape.microBatch ?? 0)
    const T = batch.shape[1]
    const own = {
      batch: {
        inputIds: layout.gather(batch.inputIds, T),
        attentionMask: layout.gather(batch.attentionMask, T),
        tokenTypeIds: layout.gather(batch.tokenTypeIds, T),
        shape: [layout.rows, T],
      },
      keepRows: layout.gather(keepRows, 1),
      // Scored pairs: the whole batch's gold scores; distillation: the teacher's vectors of the whole batch (every rank
      // computes the whole batch's loss).
      scores,
      targets,
    }
    const chunks = layout.passes
    const runs = layout.runs.bind(layout)
    // One encoder pass over this process's rows [l0, l0 + count) of `input` (own.batch, or on a CUDA graph
    // the same arrays with the bound position ids).
    const pass = (input: StepInput, [l0, count]: [number, number]) =>
      model.trainForward(slice(input, l0, count), {
        ...forward,
        keepRows: own.keepRows.subarray(l0, l0 + count),
        firstRow: layout.place(l0),
      })
    // The vectors of the whole batch: each pass's rows copied to their places (then, on ranks, the views
    // all-gathered), or the one pass's own output.
    const zWhole = this.zAll?.view(0, [rows, H])
    const whole = chunks.length === 1 && !comm
    const forwardAll = (input: StepInput): Tensor => {
      if (whole) return pass(input, chunks[0])
      for (const c of chunks) {
        const out = pass(input, c)
        runs(c[0], c[1], (l, r, k) => zWhole!.view(r * H, [k, H]).copyFrom(out.view((l - c[0]) * H, [k, H])))
      }
      if (comm) {
        const counts = layout.slices.map(([a, b]) => (b - a) * H)
        for (let v = 0; v < V; v++) comm.allGather(zWhole!.view(v * n * H, [n * H]), counts)
      }
      return zWhole!
    }
    // Back-propagates dL/dz g through this process's passes (re-running all but the last, whose activations
    // are still those of forwardAll), each pass's rows of g gathered from their places on ranks; then sums
    // the parameter gradients over the ranks.
    const backwardAll = (input: StepInput, g: Tensor) => {
      for (let i = chunks.length - 1; i >= 0; i--) {
        const [l0, count] = chunks[i]
        if (i < chunks.length - 1) pass(input, chunks[i])
        if (!comm) model.trainBackward(g.view(l0 * H, [count, H]))
        else {
          const dz = this.passGrad!.view(0, [count, H])
          runs(l0, count, (l, r, k) => dz.view((l - l0) * H, [k, H]).copyFrom(g.view(r * H, [k, H])))
          model.trainBackward(dz)
        }
      }
      if (comm) comm.allReduceSum(model.grads)
    }
    const lr = scheduledLr(o.lrSchedule, o.lr, step, totalSteps, o.warmup)
    const fail = (what: string) => diverged(step, what, o.lr, lastCheckpoint)
    // On CUDA a step is one graph from its shape's second step on (graphStep), micro-batches and all: in one
    // process, or on ranks whose collectives go through NCCL (a graph can hold NCCL's collectives, not MPI's
    // host copies; the path is known once the first step's collectives ran) when every rank has sentences
    // (a rank without any has no pass, and all ranks must capture the same collectives or none).
    const graphKey = `${batch.shape[0]}x${batch.shape[1]}`
    const graphable = () => ((comm ? n >= comm.size && /^NCCL/.test(comm.cudaPath ?? '') : chunks.length > 0) ? this.stepGraphs : null)
    const graphs = graphable()
    const fixed = {
      epoch,
      batchSize: n,
      microBatches: chunks.length,
      activationBytes: 0,
    }
    // The step's record, once its numbers are read (seconds: since it was launched, or since the previous
    // step's numbers were read if that was later).
    const info = (r: StepNumbers & { graph: 'eager' | 'captured' | 'replayed' }): StepInfo => {
      const now = performance.now()
      const seconds = (now - Math.max(launched, this.lastDone)) / 1000
      this.lastDone = now
      return {
        type: 'step',
        step: step + 1,
        totalSteps,
        ...fixed,
        // In a graph the collectives run inside the replay: their time is not measured apart.
        ...(comm
          ? r.graph === 'eager'
            ? { ranks: comm.size, communicationSeconds: comm.takeSeconds(), communicatedBytes: comm.bytes - bytesBefore }
            : { ranks: comm.size, communicatedBytes: this.graphBytes.get(graphKey) ?? 0 }
          : {}),
        ...(this.stepGraphs ? { cudaGraph: r.graph } : {}),
        loss: r.loss,
        parts: r.parts,
        ...(r.dimLosses ? { dimLosses: r.dimLosses } : {}),
        lr,
        gradNorm: r.gradNorm,
        sentencesPerSecond: n / seconds,
        alignment: r.metrics.alignment,
        uniformity: r.metrics.uniformity,
        elapsedSeconds: elapsed(),
      }
    }
    let replay = graphs !== null && graphs.isWarm(graphKey, model.activationGeneration, 'step')
    if (comm && graphs) {
      // NCCL requires every rank to capture a collective or none, and a replay to come from a capture all
      // ranks made together. A rank's graphs can differ from the others' (its arena grew at another step:
      // its rows differ), so the ranks compare their states (0 eager, 1 capture, 2 replay); when they
      // differ, all run this step eagerly and drop their graph of the shape, to capture it anew together.
      const state = !replay ? 0 : graphs.isCaptured(graphKey, 'step') ? 2 : 1
      if (comm.max(state) !== -comm.max(-state)) {
        replay = false
        graphs.forget(graphKey)
      }
    }
    if (graphs && replay) {
      // Keep one launch unread at most besides this one (the native side keeps two launches' results).
      while (this.unread.length > 1) this.unread[0].result()
      fixed.activationBytes = model.activationBytes
      return this.graphStep(graphs, graphKey, own, n, step, lr, fail, info, forwardAll, backwardAll)
    }
    // An eager step reads its numbers as it goes, and its update must follow every earlier one.
    this.drain()
    const z = forwardAll(own.batch)
    const g = this.grad.view(0, [V * n, H])
    // Diverged weights show as non-finite sentence vectors (the sample read for the metrics, or the
    // losses, which refuse them) or a non-finite loss.
    this.launchGram(z, n)
    const metrics = this.readMetrics(z, n)
    if (metrics.bad !== undefined) throw fail(`the sentence vectors hold ${metrics.bad}`)
    let result: StepLoss
    try {
      result = this.objective.loss(z, g, n, { scores, targets })
    } catch (e) {
      if (e instanceof RangeError && /contains NaN or Inf values/.test(e.message)) throw fail(NON_FINITE_VECTORS)
      throw e
    }
    const { loss, parts, dimLosses } = result
    if (!Number.isFinite(loss)) throw fail(`the loss is ${loss}`)
    model.zeroGrad()
    backwardAll(own.batch, g)
    const gradNorm = clipGradScale(model.grads, o.gradClip, this.clipScale)
    this.opt.stepWith(lr, this.clipScale)
    const nextGraphs = graphable()
    if (nextGraphs) {
      // This shape's next step is captured (the arena may have grown: warm() notes its generation).
      nextGraphs.warm(graphKey, model.activationGeneration, 'step')
      nextGraphs.markWarm(graphKey, 'step', graphArrays(own.batch, own.keepRows, model, { scores, targets }))
      if (comm) this.graphBytes.set(graphKey, comm.bytes - bytesBefore)
    }
    fixed.activationBytes = model.activationBytes
    const done = info({ loss, parts, dimLosses, gradNorm, metrics, graph: 'eager' })
    return { step: step + 1, result: () => done }
  }

  /** Reads every launched step not read yet (throwing the first one's error, if any). */
  drain(): void {
    while (this.unread.length > 0) this.unread[0].result()
  }

  /**
   * One whole-batch step as a CUDA graph (the shape ran eagerly once): captured the first time, replayed
   * after, without waiting for the GPU. Forward, the metric sample's Gram matrix, the loss, backward,
   * clipping and AdamW are one launch, which then copies the losses, the gradient norm and the metric
   * sample back to the host. Its result() checks them as the eager step does: a non-finite loss or norm has
   * made the graph skip its AdamW update, as the eager step throws before it, and the divergence flag makes
   * the step launched after it skip its update too, so the weights stay those the eager run would leave.
   */
  private graphStep(
    graphs: StepGraphs,
    key: string,
    own: { batch: Stacked; keepRows: Uint8Array } & BatchTargets,
    n: number,
    step: number,
    lr: number,
    fail: (what: string) => Error,
    info: (r: StepNumbers & { graph: 'captured' | 'replayed' }) => StepInfo,
    forwardAll: (input: StepInput) => Tensor,
    backwardAll: (input: StepInput, g: Tensor) => void,
  ): LaunchedStep {
    const { model, o } = this
    const { batch, keepRows, scores, targets } = own
    const H = model.embeddingDim
    const s = Math.min(n, METRIC_SENTENCES)
    const arrays = graphArrays(batch, keepRows, model, { scores, targets })
    const input = { ...batch, positionIds: arrays[1] as Int32Array }
    const g = this.grad.view(0, [this.views * n, H])
    const stepBefore = this.opt.step
    const adamStep = stepBefore + 1
    const captured = graphs.captures
    const record = () => {
      const z = forwardAll(input)
      this.graphZ.set(key, z)
      this.launchGram(z, n)
      // Its results come from the graph (fromResults); scores and targets are bound arrays, copied before each replay.
      this.objective.loss(z, g, n, { scores, targets })
      model.zeroGrad()
      backwardAll(input, g)
      ops.clipGradScale(model.grads, o.gradClip, this.clipScale)
      this.opt.update(lr, adamStep, this.clipScale)
    }
    // What the host reads: the first s vectors of views 1 and 2 (of the one view, twice), and the Gram matrix of the
    // last view's.
    const readback = () => {
      const z = this.graphZ.get(key)!
      return [z.view(0, [s, H]), z.view(this.views > 1 ? n * H : 0, [s, H]), this.gram.view(0, [s, s])]
    }
    const read = graphs.replay(key, 'step', arrays, step, record, { lr, adamStep, readback, clearSkip: this.unread.length === 0 })
    this.opt.step = adamStep
    const graph = graphs.captures > captured ? 'captured' : 'replayed'
    const pending = new PendingGraphStep(step + 1, () => {
      const {
        results,
        readback: [z1, z2, G],
      } = read()
      const metrics = metricsFrom(z1, this.views > 1 ? z2 : null, G, s, H)
      if (metrics.bad !== undefined) throw fail(`the sentence vectors hold ${metrics.bad}`)
      const losses = results.filter((r) => r.kind === 'loss')
      if (losses.some((r) => r.nonFinite !== 0)) throw fail(NON_FINITE_VECTORS)
      const { loss, parts, dimLosses } = this.objective.fromResults(losses.map((r) => r.value))
      if (!Number.isFinite(loss)) throw fail(`the loss is ${loss}`)
      const gradNorm = checkedNorm(results.find((r) => r.kind === 'sumSquares')!.value)
      return info({ loss, parts, dimLosses, gradNorm, metrics, graph })
    })
    pending.onRead = (failed) => {
      this.unread.splice(this.unread.indexOf(pending), 1)
      if (!failed) return
      // No update of this step or of those launched after it happened (the divergence flag): the
      // optimizer's step count goes back to where the eager run stops, and the later launches are read
      // and dropped (their numbers came from weights that are not the run's).
      this.opt.step = stepBefore
      for (const later of this.unread.splice(0)) later.discard(failed)
    }
    // Older unread launches are read before this one.
    pending.before = [...this.unread]
    this.unread.push(pending)
    return pending
  }

  /** The Gram matrix of the metric sample's last view, on the step's device (launched, not read). */
  private launchGram(z: Tensor, n: number): void {
    const H = this.model.embeddingDim
    const s = Math.min(n, METRIC_SENTENCES)
    const last = z.view((this.views - 1) * n * H, [s, H])
    linearForward(this.gram.view(0, [s, s]), last, last, null)
  }

  /**
   * Alignment (views 1 and 2) and uniformity (the last view, from launchGram's Gram matrix) over the first
   * METRIC_SENTENCES sentences, and the first non-finite value among what was read. Reads 2sH + s² floats,
   * whatever the batch size.
   */
  private readMetrics(z: Tensor, n: number): Metrics {
    const H = this.model.embeddingDim
    const s = Math.min(n, METRIC_SENTENCES)
    const z1 = z.view(0, [s, H]).toFloat32Array(),
      z2 = this.views > 1 ? z.view(n * H, [s, H]).toFloat32Array() : null
    const G = this.gram.view(0, [s, s]).toFloat32Array()
    return metricsFrom(z1, z2, G, s, H)
  }

  /** Waits for the steps in flight (their errors are dropped) and frees the step's buffers and graphs. */
  dispose(): void {
    for (const p of this.unread.splice(0)) p.discard(null)
    this.stepGraphs?.clear()
    this.grad.dispose()
    this.gram.dispose()
    this.clipScale.dispose()
    this.objective.dispose()
    this.zAll?.dispose()
    this.passGrad?.dispose()
  }
}

/**
 * The batch metrics of the sample read back, or the first non-finite value among it. One view (distillation of
 * single sentences): no second view to align with, alignment NaN.
 */
function metricsFrom(z1: Float32Array, z2: Float32Array | null, G: Float32Array, s: number, H: number): Metrics {
  const bad = [z1, z2 ?? z1, G].map((a) => a.find((x) => !Number.isFinite(x))).find((x) => x !== undefined)
  if (bad !== undefined) return { alignment: NaN, uniformity: NaN, bad }
  return { alignment: z2 ? alignment(z1, z2, s, H) : NaN, uniformity: uniformityFromGram(G, s) }
}

/** A launched graph step: read once, after every launch before it. */
class PendingGraphStep implements LaunchedStep {
  private outcome: Outcome | null = null
  /** Launches of the same TrainingStep made before this one, read first. */
  before: PendingGraphStep[] = []
  /** Called once when the numbers are read (failed: the error, null when they were fine). */
  onRead: (failed: unknown) => void = () => {}

  constructor(
    readonly step: number,
    private readonly read: () => StepInfo,
  ) {}

  result(): StepInfo {
    if (!this.outcome) {
      for (const p of this.before) p.result()
      if (!this.outcome) this.settle()
    }
    const o = this.outcome!
    if ('error' in o) throw o.error
    return o.info
  }

  /** Reads the launch (waiting for the GPU) and drops its numbers; result() then throws `why`, or says it was dropped. */
  discard(why: unknown): void {
    if (this.outcome) return
    try {
      this.read()
    } catch {
      // its own error does not matter: an earlier step's does
    }
    this.outcome = { error: why ?? new Error(`step ${this.step}: its numbers were dropped (the training step was disposed)`) }
  }

  private settle(): void {
    try {
      this.outcome = { info: this.read() }
    } catch (e) {
      this.outcome = { error: e }
      this.onRead(e)
      return
    }
    this.onRead(null)
  }
}

/** The error of a step (0-based) whose vectors or loss are not finite, naming the run's last checkpoint. */
function diverged(step: number, what: string, lr: number, last: CheckpointRef | null): Error {
  const saved = last ? `this run's last checkpoint is ${last.dir} (step ${last.step})` : 'no checkpoint of this run exists yet'
  return new Error(`step ${step + 1}: ${what} (training diverged); ${saved}; lower --lr (now ${lr}) and start over with --overwrite`)
}

const NON_FINITE_VECTORS = 'the sentence vectors hold NaN or Infinity (or values too large to normalise)'

interface Metrics {
  alignment: number
  uniformity: number
  bad?: number
}

/** What a step reports besides its timing. */
interface StepNumbers extends StepLoss {
  gradNorm: number
  metrics: Metrics
}

type Stacked = ReturnType<typeof stack>

/**
 * The host arrays a step graph binds: ids, positions, types, mask, keepRows (BertModel's order), cosent's scores,
 * the teacher's vectors.
 */
function graphArrays(batch: Stacked, keepRows: Uint8Array, model: BertModel, { scores, targets }: BatchTargets): BoundArrays {
  const arrays: BoundArrays = [batch.inputIds, model.positionIdsFor(batch), batch.tokenTypeIds, batch.attentionMask, keepRows]
  return [...arrays, ...(scores ? [scores] : []), ...(targets ? [targets] : [])]
}

/** A step's encoder input: a stacked batch, with the position ids a CUDA graph binds (else computed). */
type StepInput = Stacked & { positionIds?: Int32Array }

/** Rows [r0, r0 + m) of a step's input (same padded length T, so the dropout masks line up); views, not copies. */
function slice(b: StepInput, r0: number, m: number): StepInput {
  const T = b.shape[1]
  const rows = <A extends Int32Array>(a: A) => a.subarray(r0 * T, (r0 + m) * T) as A
  return {
    inputIds: rows(b.inputIds),
    attentionMask: rows(b.attentionMask),
    tokenTypeIds: rows(b.tokenTypeIds),
    ...(b.positionIds ? { positionIds: rows(b.positionIds) } : {}),
    shape: [m, T],
  }
}

/** Supervised columns with the run's prompts: queryPrompt before each anchor, documentPrompt before the others. */
function withPrompts(columns: string[][], o: ResolvedTrainOptions): string[][] {
  return columns.map((col, c) => {
    const prompt = c === 0 ? o.queryPrompt : o.documentPrompt
    return prompt ? col.map((s) => prompt + s) : col
  })
}

/**
 * The encoder's V·N input rows. One column (plain text): the batch tokenised once and stacked V times,
 * [x; x; x] for the views z1, z2, z0. V columns (supervised): anchors, positives[, each negative column]
 * tokenised together, so that every row has the same padded length.
 */
async function tokeniseViews(tokenizer: Tokenizer, columns: string[][], V: number, maxLength: number) {
  if (columns.length === 1) return stack(await tokenizer.encodeBatch(columns[0], { maxLength }), V)
  if (columns.length !== V) throw new Error(`a batch of ${columns.length} columns for a step of ${V} views`)
  return stack(await tokenizer.encodeBatch(columns.flat(), { maxLength }), 1)
}

/** The tokenised batch stacked V times. */
function stack(enc: EncodedBatch, V: number) {
  const rep = (a: Int32Array) => {
    const out = new Int32Array(a.length * V)
    for (let v = 0; v < V; v++) out.set(a, v * a.length)
    return out
  }
  return {
    inputIds: rep(enc.inputIds),
    attentionMask: rep(enc.attentionMask),
    tokenTypeIds: rep(enc.tokenTypeIds),
    shape: [enc.shape[0] * V, enc.shape[1]],
  }
}
