// BertModel: a BERT/RoBERTa/DistilBERT/MPNet encoder whose math runs in the native ops (lib/ops.ts) and whose
// parameters live in one flat buffer (layout.ts), read through typed per-layer views (params.ts).
// TypeScript only orchestrates the op sequence.
//
// Eval:      model.forward(batch) -> last hidden states [B, T, H] (a new tensor)
// Training:  model.trainForward(batch, { seed, step, keepRows }) -> z [B, H] (a view, valid until
//            the next call), model.trainBackward(dz) accumulates into model.grads.
// Dropout sites (HF BertModel): after the embeddings' LayerNorm, on attention probabilities, and on
// the attention-output and FFN-output projections before their residual LayerNorm (DistilBERT has no
// dropout on the attention output: that site is skipped, keeping the others' numbers). Each site of each
// step gets its own Philox offset, so masks are a pure function of (seed, step, site, element).
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import {
  attentionOutputDropoutProb,
  hfConfigJson,
  namedConfig,
  paddingAwarePositions,
  parseHfConfig,
  positionOffset,
  readHfConfig,
  toHfConfig,
  type BertConfig,
  type NamedConfig,
} from './config.js'
import { checkpointName, matchCheckpoint, parameterSpecs } from './names.js'
import { chunksOf, writeSafetensorsChunked, type ChunkedTensor } from '../safetensors-writer.js'
import { findWeightFiles, openWeights } from './model-files.js'
import { loadParameters } from './load-weights.js'
import { checkKeepLayers, keptLayersMapping, withKeptLayers } from './keep-layers.js'
import { Tensor, type Device } from '../tensor.js'
import { addon, type Precision, type RowPlacement } from '../native.js'
import { checkRowPlacement } from '../dropout.js'
import * as ops from '../ops.js'
import { poolBackward, poolForward, type Pooling } from './pooling.js'
import { ActivationArena, type Activations } from './activations.js'
import { Bf16Values } from '../bf16-values.js'
import { initialiseParameters } from './init.js'
import { initialParameters } from './init-parallel.js'
import { MLP_WEIGHT, paramLayout, type ParamLayout } from './layout.js'
import { mlpHeadOf, modelParams, viewsByName, type Affine, type ModelParams } from './params.js'
import { DenseHead, type DenseShape } from './dense-head.js'
import { writeFileAtomic } from '../util/atomic-write.js'
import { checkModelFits, parameterCount } from './size-check.js'
import { StepGraphs, type BoundArrays } from './step-graphs.js'
import { disposeInt8Layers, packInt8Layers, type Int8Layer } from './int8-weights.js'
import { ModernArena, ModernBertPasses, modernParams, type ModernActivations, type ModernParams } from './modernbert.js'

/** A pass's activations: BERT's layers or ModernBERT's (modernbert.ts). */
type AnyActivations = Activations | ModernActivations

export interface BatchInput {
  /** Token ids, row-major [B, T]. */
  inputIds: Int32Array
  /** 1 for real tokens, 0 for padding; default all ones. */
  attentionMask?: Int32Array
  /** Segment ids; default all zeros. */
  tokenTypeIds?: Int32Array
  /**
   * Position ids (default: the model's own, positionIdsFor). Given, they must be the model's own: a CUDA
   * step graph binds the very array its ops read (lib/train/step.ts).
   */
  positionIds?: Int32Array
  shape: [number, number] | number[]
}

export interface ModelOptions {
  device?: Device
  /** Add the SimCSE training head (z = tanh(W·h_CLS + b)); it is never saved. Default false. */
  mlp?: boolean
  /**
   * sentence-transformers Dense modules after the pooling, trained with the encoder (dense-head.ts): the sentence
   * vectors (trainForward's z, embed's) are their output. Not with mlp. Their initial weights are drawn as the
   * encoder's; a caller fine-tuning a model copies the modules' own weights in (param()).
   */
  dense?: readonly DenseShape[]
  /** Seed for the initialisation of anything the checkpoint lacks (and of create()). Default 0. */
  seed?: number
  /**
   * Precision of the linear layers' matrix products: 'fp32' (default), or 'bf16' (operands rounded to
   * bfloat16, fp32 sums: tensor cores on CUDA). Parameters, activations and all other math stay fp32.
   */
  precision?: Precision
  /**
   * load() only: the encoder layers to keep, by index, in increasing order (sentence-transformers' distillation
   * example's layers_to_keep): the model gets those layers alone, renumbered from 0 (keep-layers.ts).
   */
  keepLayers?: readonly number[]
}

export type { Pooling }

export interface TrainForwardOptions {
  /** Dropout seed of the run. */
  seed: number | bigint
  /** Training step: with the site index it selects the Philox stream of every dropout site. */
  step: number
  /** Per-row dropout switch (length B): 0 runs that sentence without any dropout. */
  keepRows?: Uint8Array
  /** Sentence vector before the MLP head. Default 'cls'. */
  pooling?: Pooling
  /** Apply the MLP head (requires a model built with mlp: true). Default: whether it has one. */
  mlp?: boolean
  /**
   * Where this batch's rows sit in the whole contrastive batch (default 0: it is the whole batch): a
   * micro-batch's first row, or a data-parallel rank's runs of rows (RowPlacement). They then draw exactly
   * the whole batch's dropout masks (keepRows lists this batch's own rows). The batch must be padded to the
   * whole batch's length T, as the masks are indexed by (row, T).
   */
  firstRow?: RowPlacement
  /**
   * On CUDA, run this forward (and its trainBackward) as CUDA graphs: eagerly the first time a batch shape
   * is seen, captured the second, replayed after (lib/model/step-graphs.ts). Same results as eager. Ignored
   * on the CPU. Default false.
   */
  graph?: boolean
}

interface Saved {
  batch: Required<Omit<BatchInput, 'shape'>> & { positionIds: Int32Array }
  acts: AnyActivations
  options: Required<Omit<TrainForwardOptions, 'keepRows' | 'graph'>> & { keepRows: Uint8Array | null }
  /** Set when the pass ran as a step graph: its shape key and bound arrays, for the backward. */
  graph?: { key: string; arrays: BoundArrays }
}

export class BertModel {
  readonly params: Tensor
  private gradBuffer: Tensor | null = null
  private readonly views: Map<string, Tensor>
  /** Typed views of params and (once allocated) grads, used by forward and backward. */
  private readonly p: ModelParams | null
  private g: ModelParams | null = null
  private readonly arena: ActivationArena
  /**
   * Whether training keeps the attention's packed q | k | v, ctx and ctx's gradient in bfloat16 at the lengths whose
   * attention takes bf16 operands (activations.ts, attentionKeptBf16): at bf16 on CUDA (where it saves memory
   * traffic; the CPU's ops would unpack the values into fp32 scratch), unless SIMCSEPP_ATTENTION_STORAGE says 'fp32'
   * (off) or 'bf16' (on either device), read when the model is made. The same values either way. ModernBERT keeps
   * those arrays in fp32, but with this flag it too keeps no probabilities where the bf16 backward forms them.
   */
  readonly attentionBf16: boolean
  /** ModernBERT's passes, parameter and gradient views and activations (null for the BERT family). */
  private readonly modern: ModernBertPasses | null = null
  private readonly mp: ModernParams | null = null
  private gm: ModernParams | null = null
  private readonly modernArena: ModernArena | null = null
  /** The SimCSE head's parameters and gradients (views), when the model has one. */
  private readonly mlpHead: Affine | null
  private gMlpHead: Affine | null = null
  /** The Dense modules after the pooling (ModelOptions.dense), or null. */
  private readonly denseHead: DenseHead | null
  private saved: Saved | null = null
  private isDisposed = false
  /** CUDA graphs of the training passes (created on the first trainForward with graph: true). */
  private stepGraphs: StepGraphs | null = null
  /** Per graph shape: the buffer dL/dz is copied into, so that the captured backward reads a fixed address. */
  private readonly graphDz = new Map<string, Tensor>()
  /**
   * For a model without token types (DistilBERT, MPNet): the one-row table of zeros the embedding op adds for every
   * token (x + 0 is x exactly), not a parameter; its gradient is not formed. Made with the model, so that no
   * step graph captures its allocation.
   */
  private readonly zeroTypeRow: Tensor | null
  /** The layers' int8 weights once quantizeInt8 has run: the eval passes' products then run in int8. */
  private int8Layers: Int8Layer[] | null = null

  private constructor(
    readonly config: BertConfig,
    readonly layout: ParamLayout,
    readonly device: Device,
    /** The parameters, layout.total elements on `device`; the model owns them from here on. */
    params: Tensor,
    /** Precision of the linear layers' products (ModelOptions.precision). */
    readonly precision: Precision,
    /** ModelOptions.dense (their parameters are in the layout). */
    readonly dense: readonly DenseShape[] = [],
  ) {
    this.params = params
    // At bf16 on CUDA the products read their weights from a bf16 copy that AdamW keeps up to date, rather
    // than rounding every weight again at every op and micro-batch (kernels/bf16_mirror.cuh): 2 bytes a parameter.
    // On CUDA training also keeps the attention's q | k | v, ctx and ctx's gradient in bfloat16, where the attention
    // rounds them anyway (the environment is read here, where a bad setting frees what the model was given).
    try {
      // (ModernBERT's passes keep their own activations: their q | k | v and ctx stay fp32, but they too keep no
      // probabilities where the attention's bf16 backward forms them: keepsProbs.)
      this.attentionBf16 = precision === 'bf16' && attentionStorageBf16(device)
      if (device === 'cuda' && precision === 'bf16') this.params.attachBf16Mirror()
    } catch (e) {
      this.params.dispose()
      throw e
    }
    this.views = viewsByName(this.params, layout)
    this.mlpHead = mlpHeadOf(this.views)
    this.denseHead = DenseHead.of(dense, this.views, device, precision)
    // At bf16 training keeps the MLP's pre-activation in bfloat16 (as autocast does): half the largest activation.
    this.arena = new ActivationArena(config, device, precision === 'bf16', this.attentionBf16)
    if (config.modelType === 'modernbert') {
      this.p = null
      this.mp = modernParams(this.views, config.numHiddenLayers)
      this.modern = new ModernBertPasses(config, device, precision)
      this.modernArena = new ModernArena(config, device, this.attentionBf16)
      this.zeroTypeRow = null
    } else {
      this.p = modelParams(this.views, config.numHiddenLayers, this.params, layout)
      this.zeroTypeRow = this.p.tokenTypeEmbeddings === null ? Tensor.zeros([1, config.hiddenSize], device) : null
    }
  }

  /**
   * A randomly initialised model (transformers' initialisation) from a config or a named size. (`internal.zeros`:
   * all parameters zero instead, for a caller about to overwrite them all, as resuming a checkpoint does: drawing
   * bert-base's 110 M values takes about 6 s.)
   */
  static create(config: BertConfig | NamedConfig, options: ModelOptions = {}, internal?: { zeros: boolean }): BertModel {
    const { c, layout, precision, device } = BertModel.plan(config, options, 'BertModel.create')
    const dense = options.dense ?? []
    if (internal?.zeros) return new BertModel(c, layout, device, Tensor.zeros([layout.total], device), precision, dense)
    const flat = new Float32Array(layout.total)
    initialiseParameters(flat, layout, c, options.seed ?? 0)
    return new BertModel(c, layout, device, Tensor.from(flat, [layout.total], device), precision, dense)
  }

  /**
   * create()'s model, bit for bit, its initial weights drawn by as many worker threads as the addon uses
   * (numThreads()) when the model is large enough to gain from them (init-parallel.ts): bert-base's 110 M draws
   * take 5.7 s on one thread of the 2-core development VM.
   */
  static async createAsync(config: BertConfig | NamedConfig, options: ModelOptions = {}): Promise<BertModel> {
    const { c, layout, precision, device } = BertModel.plan(config, options, 'BertModel.createAsync')
    const flat = await initialParameters(layout, c, options.seed ?? 0, addon.numThreads())
    return new BertModel(c, layout, device, Tensor.from(flat, [layout.total], device), precision, options.dense ?? [])
  }

  /** The checked config, layout, precision and device of a model to create. */
  private static plan(config: BertConfig | NamedConfig, options: ModelOptions, source: string) {
    const c = typeof config === 'string' ? namedConfig(config) : parseHfConfig(toHfConfig(config))
    checkModelFits(c, { mlp: options.mlp, training: options.mlp || !!options.dense?.length, source })
    checkDenseOptions(c, options, source)
    if (options.keepLayers !== undefined)
      throw new TypeError(`${source}: keepLayers applies to BertModel.load (a pretrained model's layers)`)
    return {
      c,
      layout: paramLayout(c, { mlp: options.mlp, dense: options.dense }),
      precision: checkPrecision(options.precision),
      device: options.device ?? 'cpu',
    }
  }

  /** Loads a Hugging Face directory: config.json and model.safetensors or its shards (BertModel or RobertaModel names). */
  static async load(dir: string, options: ModelOptions = {}): Promise<BertModel> {
    const full = await readHfConfig(dir)
    const kept = options.keepLayers === undefined ? null : checkKeepLayers(options.keepLayers, full, join(dir, 'config.json'))
    const config = kept ? withKeptLayers(full, kept) : full
    const weights = await findWeightFiles(dir) // model.safetensors or the shards of model.safetensors.index.json
    const file = weights.source
    // Sizes first: a config.json asking for a million layers is an Error before anything is allocated.
    const configFile = join(dir, 'config.json')
    checkModelFits(config, { mlp: options.mlp, training: options.mlp || !!options.dense?.length, source: configFile })
    checkDenseOptions(config, options, 'BertModel.load')
    const encoderBytes = 2 * parameterCount(config, { pooler: false }) // every encoder tensor must be there, 16-bit at least
    const fileBytes = weights.bytes
    if (encoderBytes > fileBytes) {
      throw new Error(`${configFile} describes a model larger than ${file} (${fileBytes} bytes) can hold: they do not belong together`)
    }
    const precision = checkPrecision(options.precision)
    const layout = paramLayout(config, { mlp: options.mlp, dense: options.dense })
    const device = options.device ?? 'cpu'
    const reader = await openWeights(weights)
    try {
      const match = matchCheckpoint(parameterSpecs(full), reader.entries, {
        modelType: config.modelType,
        allowMissingPooler: true,
        source: file,
      })
      const mapping = kept ? keptLayersMapping(match.mapping, kept) : match.mapping
      const params = Tensor.zeros([layout.total], device)
      try {
        await loadParameters(params, layout, config, options.seed ?? 0, reader, mapping)
      } catch (e) {
        params.dispose()
        throw e
      }
      return new BertModel(config, layout, device, params, precision, options.dense ?? [])
    } finally {
      await reader.close()
    }
  }

  /** Bytes of activation memory held (sized by the largest pass so far: a micro-batch with --micro-batch). */
  get activationBytes(): number {
    return (this.modernArena ?? this.arena).bytes
  }

  /** Changes whenever the activation memory is reallocated (CUDA graphs address the old one). */
  get activationGeneration(): number {
    return (this.modernArena ?? this.arena).generation
  }

  /** Whether dispose() was called; every other method then throws. */
  get disposed(): boolean {
    return this.isDisposed
  }

  /** Writes config.json and model.safetensors (transformers' names for the model type; no training head). */
  async save(dir: string): Promise<void> {
    this.requireLive('save')
    await mkdir(dir, { recursive: true })
    const out = new Map<string, ChunkedTensor>()
    const type = this.config.modelType
    for (const e of this.layout.entries)
      if (e.saved) out.set(checkpointName(e.name, type), { shape: e.shape, fill: chunksOf(this.params, e.offset) })
    await writeSafetensorsChunked(join(dir, 'model.safetensors'), out)
    await writeFileAtomic(join(dir, 'config.json'), hfConfigJson(this.config))
  }

  /** Writes Dense module i (ModelOptions.dense) into `dir` as sentence-transformers saves one. */
  async saveDenseModule(i: number, dir: string): Promise<void> {
    this.requireLive('saveDenseModule')
    if (!this.denseHead || !Number.isInteger(i) || i < 0 || i >= this.dense.length)
      throw new RangeError(`saveDenseModule: the model has ${this.dense.length} Dense module(s), no module ${i}`)
    await this.denseHead.save(i, dir)
  }

  /** The tensor of one parameter (a view into `params`). */
  param(name: string): Tensor {
    this.requireLive('param')
    const t = this.views.get(name)
    if (!t) throw new Error(`BertModel: no parameter named ${name}`)
    return t
  }

  /** Gradients, same layout as `params` (allocated on first use). */
  get grads(): Tensor {
    this.requireLive('grads')
    if (!this.gradBuffer) {
      this.gradBuffer = Tensor.zeros([this.layout.total], this.device)
      const views = viewsByName(this.gradBuffer, this.layout)
      if (this.modern) this.gm = modernParams(views, this.config.numHiddenLayers)
      else this.g = modelParams(views, this.config.numHiddenLayers, this.gradBuffer, this.layout)
      this.gMlpHead = mlpHeadOf(views)
      this.denseHead?.bindGrads(views)
    }
    return this.gradBuffer
  }

  zeroGrad(): void {
    this.requireLive('zeroGrad')
    this.grads.fill(0)
  }

  /** Last hidden states [B, T, H] in eval mode (no dropout), as a new tensor. */
  forward(batch: BatchInput): Tensor {
    this.requireLive('forward')
    const { acts } = this.run(batch, null)
    const out = this.lastHidden(acts)
    const [B, T] = batch.shape
    return out.view(0, [B, T, this.config.hiddenSize]).to(this.device)
  }

  /**
   * Sentence vectors [B, embeddingDim] in eval mode: CLS (before any MLP head) or the mean over real tokens, through
   * the Dense modules where the model has them. On CUDA,
   * `graph: true` runs it as a CUDA graph per batch shape (eager the first time, captured the second,
   * replayed after; the same vectors bit for bit): one launch instead of a few hundred.
   */
  embed(batch: BatchInput, pooling: Pooling = 'cls', options: { graph?: boolean; poolMask?: Int32Array } = {}): Tensor {
    this.requireLive('embed')
    // poolMask: the tokens the pooling averages, when not all the attended ones (a prompt left out); such passes
    // run eagerly (a step graph binds only the attention mask).
    if (options.graph === true && this.device === 'cuda' && !options.poolMask) return this.graphEmbed(batch, pooling)
    const { acts, input } = this.run(batch, null)
    if (options.poolMask && options.poolMask.length !== input.attentionMask.length)
      throw new RangeError(`embed: poolMask has ${options.poolMask.length} entries, the batch ${input.attentionMask.length}`)
    this.pool(acts, options.poolMask ?? input.attentionMask, pooling)
    return (this.denseHead?.forward(acts.pooled) ?? acts.pooled).to(this.device)
  }

  private graphEmbed(batch: BatchInput, pooling: Pooling): Tensor {
    const input = this.checkBatch(batch)
    const [B, T] = batch.shape
    const acts = this.acquire(B, T, false)
    this.stepGraphs ??= new StepGraphs(1 + 3 * this.config.numHiddenLayers)
    const arrays: BoundArrays = [input.inputIds, input.positionIds, input.tokenTypeIds, input.attentionMask]
    this.stepGraphs.run(`${B}x${T} embed ${pooling}`, this.activationGeneration, 'embed', arrays, 0, () => {
      this.encode(input, acts, null)
      this.pool(acts, input.attentionMask, pooling)
      this.denseHead?.forward(acts.pooled)
    })
    // A copy on the legacy stream, which waits for the replay on the graphs' blocking stream.
    return (this.denseHead?.output(B) ?? acts.pooled).to(this.device)
  }

  /**
   * From now on the eval passes (forward, embed) run the encoder layers' linear products in int8 on the CPU: each
   * weight quantized now, per output channel, each input row at every product (native/cpu/linear_int8.h; about 4x
   * the fp32 products' speed with AVX-512 VNNI). Training passes are then refused. Weights changed afterwards are
   * not seen until it is called again. SentenceEncoder's precision 'int8'.
   */
  quantizeInt8(): void {
    this.requireLive('quantizeInt8')
    if (this.device !== 'cpu')
      throw new Error(`BertModel.quantizeInt8: int8 runs on the CPU, and this model is on '${this.device}' (bf16 is CUDA's fast precision)`)
    const weights = this.mp
      ? this.mp.layers.map((l) => ({ qkv: l.wqkv, attentionOutput: l.wo, intermediate: l.wi, output: l.mlpWo }))
      : this.p!.layers.map((l) => ({
          qkv: l.qkv.weight,
          attentionOutput: l.attentionOutput.weight,
          intermediate: l.intermediate.weight,
          output: l.output.weight,
        }))
    const packed = packInt8Layers(weights)
    if (this.int8Layers) disposeInt8Layers(this.int8Layers)
    this.int8Layers = packed
  }

  /** Whether quantizeInt8 has run (the eval passes' products are int8). */
  get int8(): boolean {
    return this.int8Layers !== null
  }

  /** Training-mode forward with dropout; returns z [B, H] (a view valid until the next call). */
  trainForward(batch: BatchInput, options: TrainForwardOptions): Tensor {
    this.requireLive('trainForward')
    if (this.int8Layers)
      throw new Error('trainForward: this model runs its products in int8 (quantizeInt8), for inference only; load it again to train it')
    const mlp = options.mlp ?? this.layout.byName.has(MLP_WEIGHT)
    if (mlp && !this.layout.byName.has(MLP_WEIGHT))
      throw new Error('trainForward: this model has no MLP head (create or load it with mlp: true)')
    if (mlp && this.denseHead) throw new Error('trainForward: this model trains its Dense modules, not an MLP head (mlp: false)')
    if (!Number.isSafeInteger(options.step) || options.step < 0)
      throw new TypeError(`trainForward: step must be a non-negative integer, got ${options.step}`)
    const [B] = batch.shape
    if (options.keepRows && options.keepRows.length !== B)
      throw new RangeError(`trainForward: keepRows has ${options.keepRows.length} entries for ${B} rows`)
    const firstRow = checkRowPlacement('trainForward: firstRow', options.firstRow ?? 0)
    const opts = {
      seed: options.seed,
      step: options.step,
      keepRows: options.keepRows ?? null,
      pooling: options.pooling ?? 'cls',
      mlp,
      firstRow,
    }
    if (options.graph === true && this.device === 'cuda') return this.graphTrainForward(batch, opts)
    const { acts, input } = this.run(batch, opts)
    this.head(acts, input, opts)
    this.saved = { batch: input, acts, options: opts }
    return this.headOutput(acts, opts)
  }

  /** The position ids of a batch (BERT: 0..T-1 per row; RoBERTa: from the padding). */
  positionIdsFor(batch: BatchInput): Int32Array {
    this.requireLive('positionIdsFor')
    return this.checkBatch(batch).positionIds
  }

  /** Passes captured and replayed as CUDA graphs so far (trainForward's graph option). */
  get graphStats(): { captures: number; replays: number } {
    return { captures: this.stepGraphs?.captures ?? 0, replays: this.stepGraphs?.replays ?? 0 }
  }

  private graphTrainForward(batch: BatchInput, opts: Saved['options']): Tensor {
    const input = this.checkBatch(batch)
    const [B, T] = batch.shape
    const acts = this.acquire(B, T, true)
    this.stepGraphs ??= new StepGraphs(1 + 3 * this.config.numHiddenLayers)
    const arrays: BoundArrays = [input.inputIds, input.positionIds, input.tokenTypeIds, input.attentionMask]
    if (opts.keepRows) arrays.push(opts.keepRows)
    // Everything a captured pass holds as a kernel argument, besides the arena's addresses.
    const key = `${B}x${T} ${opts.pooling} mlp=${opts.mlp} keepRows=${opts.keepRows !== null} firstRow=${JSON.stringify(opts.firstRow)}`
    this.stepGraphs.run(key, this.activationGeneration, 'forward', arrays, opts.step, () => {
      this.encode(input, acts, opts)
      this.head(acts, input, opts)
    })
    this.saved = { batch: input, acts, options: opts, graph: { key, arrays } }
    return this.headOutput(acts, opts)
  }

  /** Pooling and the MLP head (or the Dense modules) of a training forward. */
  private head(acts: AnyActivations, input: Saved['batch'], opts: Saved['options']): void {
    this.pool(acts, input.attentionMask, opts.pooling)
    if (opts.mlp) {
      ops.linearForward(acts.z, acts.pooled, this.mlpHead!.weight, this.mlpHead!.bias, this.precision)
      ops.tanhForward(acts.z, acts.z)
    }
    this.denseHead?.forward(acts.pooled)
  }

  /** The vectors z that head() left (also after a graph's replay, which runs its ops without calling it). */
  private headOutput(acts: AnyActivations, opts: Saved['options']): Tensor {
    return this.denseHead?.output(acts.B) ?? (opts.mlp ? acts.z : acts.pooled)
  }

  /** Width of the sentence vectors: the last Dense module's output, else the hidden size. */
  get embeddingDim(): number {
    return this.denseHead?.outFeatures ?? this.config.hiddenSize
  }

  /** Back-propagates dL/dz [B, embeddingDim] of the last trainForward into `grads` (accumulating). */
  trainBackward(dz: Tensor): void {
    this.requireLive('trainBackward')
    const s = this.saved
    if (!s) throw new Error('trainBackward: call trainForward first')
    this.saved = null
    void this.grads // allocates the gradient buffer and its views on first use
    if (!s.graph) return this.backward(s, dz)
    // The captured backward reads dL/dz from a buffer of its own.
    const { key, arrays } = s.graph
    const n = s.acts.B * this.embeddingDim
    let buf = this.graphDz.get(key)
    if (!buf) this.graphDz.set(key, (buf = Tensor.zeros([n], this.device)))
    const dzFixed = buf.view(0, [s.acts.B, this.embeddingDim])
    dzFixed.copyFrom(dz)
    this.stepGraphs!.run(key, this.activationGeneration, 'backward', arrays, s.options.step, () => this.backward(s, dzFixed))
  }

  private backward(s: Saved, dz: Tensor): void {
    const { acts, batch, options } = s
    const c = this.config
    let dPooled = this.denseHead ? this.denseHead.backward(acts.pooled, dz) : dz
    if (options.mlp) {
      ops.tanhBackward(acts.gPooled, acts.z, dz)
      ops.linearBackward(
        acts.gTmp.view(0, [acts.B, c.hiddenSize]),
        this.gMlpHead!.weight,
        this.gMlpHead!.bias,
        acts.gPooled,
        acts.pooled,
        this.mlpHead!.weight,
        false,
        this.precision,
      )
      dPooled = acts.gTmp.view(0, [acts.B, c.hiddenSize])
    }
    const hidden3 = (t: Tensor) => t.view(0, [acts.B, acts.T, c.hiddenSize])
    poolBackward(options.pooling, hidden3(acts.gH), dPooled, hidden3(this.lastHidden(acts)), batch.attentionMask)
    if (this.modern) {
      this.modern.backward(this.mp!, this.gm!, batch, acts as ModernActivations, (site, p) => this.dropoutOptions(options, site, p))
      return
    }
    this.backwardBert(acts as Activations, batch, options)
  }

  /** BERT's layers and embeddings backward, from acts.gH (the gradient at the last hidden state). */
  private backwardBert(acts: Activations, batch: Saved['batch'], options: Saved['options']): void {
    const c = this.config,
      L = c.numHiddenLayers
    // At bf16 the two LayerNorm backwards, the GELU's and the attention's write the bf16 copy of the gradient
    // the next op's products read (bf16Next; on CUDA: kernels/bf16_handoff.cuh).
    const bf16 = this.precision === 'bf16'
    const P = this.p!,
      G = this.g!

    // On CUDA every linear layer's bias gradient is summed by the op that makes the gradient it sums (the LayerNorm
    // backwards, the GELU's backward pass, the attention's), which then need not write that gradient in fp32 at all
    // when only the bf16 products read it; the CPU sums them inside the weight gradients' products, as it packs them,
    // at no extra cost.
    const sumsInProducers = this.device === 'cuda' && biasSumsInProducers()
    for (let l = L - 1; l >= 0; l--) {
      const a = acts.layers[l]
      const p = P.layers[l],
        gp = G.layers[l]
      // h1 and the layer's input x (the output of the layer before) are one buffer each for all layers
      // (activations.ts): the weight gradients that read them recompute them from the LayerNorms' saved inputs and
      // statistics (layerNormInput: the forward's bits; at bf16 on CUDA rounded as they are made).
      const h1: ops.LayerNormInput = {
        x: a.res1,
        mean: a.mean1,
        rstd: a.rstd1,
        weight: p.attentionNorm.weight,
        bias: p.attentionNorm.bias,
      }
      const prev = l > 0 ? acts.layers[l - 1] : null
      const x: ops.LayerNormInput | null = prev && {
        x: prev.res2,
        mean: prev.mean2,
        rstd: prev.rstd2,
        weight: P.layers[l - 1].outputNorm.weight,
        bias: P.layers[l - 1].outputNorm.bias,
      }
      // Output LayerNorm and the FFN-output dropout (fused: gRes for the residual, gTmp through the
      // dropout, or gRes itself without one), output.dense, GELU, intermediate.dense.
      const drop2 = this.dropoutOptions(options, this.site(l, 2), c.hiddenDropoutProb)
      const dy2 = drop2 ? acts.gTmp : null
      ops.layerNormDropoutBackward(
        acts.gRes,
        dy2,
        gp.outputNorm.weight,
        gp.outputNorm.bias,
        acts.gH,
        a.res2,
        p.outputNorm.weight,
        a.mean2,
        a.rstd2,
        acts.B,
        drop2,
        // The output gradient of output.dense, next (as the forwards', bf16Next on CUDA); on CUDA output.dense's bias
        // gradient summed here.
        bf16 && sumsInProducers ? 'only' : bf16,
        sumsInProducers ? gp.output.bias : null,
      )
      // gI2 = (dy2 · W_out) ⊙ GELU'(inter): output.dense's input gradient carried through the GELU in one op.
      // Its input GELU(inter) is the forward's bf16 copy where kept (keepsGeluCopies), else not kept (interAct is one
      // buffer for all layers): the op recomputes it.
      // On CUDA that op also sums gI2's columns (intermediate.dense's bias gradient) in its GELU pass, and at bf16
      // then writes only gI2's bf16 copy, all intermediate.dense's products read ('only').
      ops.linearBackward(
        acts.gI2,
        gp.output.weight,
        sumsInProducers ? null : gp.output.bias,
        dy2 ?? acts.gRes,
        a.actBf16,
        p.output.weight,
        false,
        this.precision,
        a.inter,
        bf16 && sumsInProducers ? 'only' : bf16, // gI2: the output gradient of intermediate.dense, next
        null,
        sumsInProducers ? gp.intermediate.bias : null,
      )
      // intermediate.dense's input gradient added to the residual's (gRes) by the product itself
      // (accumulateInput): gRes is then the whole gradient at h1.
      ops.linearBackward(
        acts.gRes,
        gp.intermediate.weight,
        sumsInProducers ? null : gp.intermediate.bias,
        acts.gI2,
        a.h1Bf16, // the input h1: its kept bf16 copy, else recomputed
        p.intermediate.weight,
        true,
        this.precision,
        null,
        false,
        a.h1Bf16 ? null : h1,
      )
      // Attention-output LayerNorm and its dropout (fused), output.dense, attention, the q/k/v projections.
      // The residual's gradient goes to gH this time, so the q/k/v product can add into it below.
      const drop1 = this.dropoutOptions(options, this.site(l, 1), attentionOutputDropoutProb(c))
      const dy1 = drop1 ? acts.gTmp : null
      ops.layerNormDropoutBackward(
        acts.gH,
        dy1,
        gp.attentionNorm.weight,
        gp.attentionNorm.bias,
        acts.gRes,
        a.res1,
        p.attentionNorm.weight,
        a.mean1,
        a.rstd1,
        acts.B,
        drop1,
        bf16 && sumsInProducers ? 'only' : bf16, // the output gradient of attention.output.dense, next
        sumsInProducers ? gp.attentionOutput.bias : null,
      )
      // ctx's gradient: kept in bf16 with ctx (the attention's backward rounds it anyway).
      ops.linearBackward(
        acts.gCtx instanceof Bf16Values ? acts.gCtx : acts.gCtx.view(0, [acts.B * acts.T, c.hiddenSize]),
        gp.attentionOutput.weight,
        sumsInProducers ? null : gp.attentionOutput.bias,
        dy1 ?? acts.gH,
        a.ctx,
        p.attentionOutput.weight,
        false,
        this.precision,
      )
      ops.attentionBackward(
        acts.gQkv,
        null,
        null,
        acts.gCtx,
        a.qkv,
        null,
        null,
        a.probs, // null beyond KEEP_PROBS_MAX_T and where keepsProbs says: the backward forms them again
        batch.attentionMask,
        c.numAttentionHeads,
        this.dropoutOptions(options, this.site(l, 0), c.attentionProbsDropoutProb),
        // The packed q/k/v gradient: the output gradient of the q/k/v product, next. On CUDA its column sums (the
        // q/k/v bias gradient) are made here, and at bf16 only its bf16 copy, which both products read.
        bf16 && sumsInProducers ? 'only' : bf16,
        acts.relBias,
        acts.dRelBias,
        this.precision,
        sumsInProducers ? gp.qkv.bias : null,
      )
      // MPNet: this layer's share of the shared bias table's gradient.
      if (G.relativeAttentionBias) ops.relativeBiasBackward(G.relativeAttentionBias, acts.dRelBias!)
      const gQkv = acts.gQkv.view(0, [acts.B * acts.T, 3 * c.hiddenSize])
      // The q/k/v input gradient added to the residual's (gH): the whole gradient at the layer's input.
      // x: the embeddings' output (kept) in layer 0, else the layer before's output LayerNorm: its kept bf16 copy, or
      // recomputed.
      const keptX = prev?.h2Bf16 ?? null
      ops.linearBackward(
        acts.gH,
        gp.qkv.weight,
        sumsInProducers ? null : gp.qkv.bias,
        gQkv,
        keptX ?? (x ? null : acts.embOut),
        p.qkv.weight,
        true,
        this.precision,
        null,
        false,
        keptX ? null : x,
      )
    }
    // Embeddings: dropout, LayerNorm, the three tables.
    this.dropoutBackward(acts.gTmp, acts.gH, options, 0, c.hiddenDropoutProb, acts.B)
    ops.layerNormBackward(
      acts.gRes,
      G.embeddingNorm.weight,
      G.embeddingNorm.bias,
      acts.gTmp,
      acts.embSum,
      P.embeddingNorm.weight,
      acts.embMean,
      acts.embRstd,
    )
    ops.embeddingBackward(
      G.wordEmbeddings,
      G.positionEmbeddings,
      G.tokenTypeEmbeddings,
      acts.gRes,
      batch.inputIds,
      batch.positionIds,
      batch.tokenTypeIds,
    )
  }

  /** Frees native memory (parameters, gradients, activations) now; the model cannot be used afterwards. */
  dispose(): void {
    this.isDisposed = true
    this.saved = null
    this.stepGraphs?.clear()
    for (const t of this.graphDz.values()) t.dispose()
    this.denseHead?.dispose()
    this.arena.dispose()
    this.modernArena?.dispose()
    this.modern?.dispose()
    this.zeroTypeRow?.dispose()
    if (this.int8Layers) disposeInt8Layers(this.int8Layers)
    this.int8Layers = null
    this.gradBuffer?.dispose()
    this.params.dispose() // frees the storage of every parameter view too (native/tensor.h)
  }

  private requireLive(method: string): void {
    if (this.isDisposed) throw new Error(`BertModel.${method}: this model was disposed (load or create a new one)`)
  }

  // Dropout site index: 0 for the embeddings, then (attention probs, attention output, FFN output) per layer.
  private site(layer: number, which: 0 | 1 | 2): number {
    return 1 + 3 * layer + which
  }

  private dropoutOptions(o: Saved['options'] | null, site: number, p: number): ops.DropoutSite | null {
    if (!o || p === 0) return null
    const sites = 1 + 3 * this.config.numHiddenLayers
    return { p, seed: o.seed, offset: BigInt(o.step) * BigInt(sites) + BigInt(site), keepRows: o.keepRows, firstRow: o.firstRow }
  }

  // In-place dropout on t viewed as [B, rows/B ...] so keepRows applies per sentence.
  private dropoutForward(t: Tensor, o: Saved['options'] | null, site: number, p: number, B: number): void {
    const d = this.dropoutOptions(o, site, p)
    if (!d) return
    const rows = t.view(0, [B, t.numel / B])
    ops.dropout(rows, rows, d)
  }

  private dropoutBackward(out: Tensor, grad: Tensor, o: Saved['options'], site: number, p: number, B: number): void {
    const d = this.dropoutOptions(o, site, p)
    const dst = out.view(0, [B, out.numel / B]),
      src = grad.view(0, [B, grad.numel / B])
    if (!d) dst.copyFrom(src)
    else ops.dropout(src, dst, d)
  }

  /** The last hidden states [BT, H] a pass wrote. */
  private lastHidden(acts: AnyActivations): Tensor {
    if ('final' in acts) return acts.final
    return acts.layers.length ? acts.layers[acts.layers.length - 1].h2 : acts.embOut
  }

  /** The activation views of a [B, T] pass (the model family's). */
  private acquire(B: number, T: number, training: boolean): AnyActivations {
    return this.modernArena ? this.modernArena.acquire(B, T, training) : this.arena.acquire(B, T, training)
  }

  private pool(acts: AnyActivations, mask: Int32Array, pooling: Pooling) {
    poolForward(pooling, acts.pooled, this.lastHidden(acts).view(0, [acts.B, acts.T, this.config.hiddenSize]), mask)
  }

  private checkBatch(batch: BatchInput): Saved['batch'] {
    const c = this.config
    if (!batch || typeof batch !== 'object')
      throw new TypeError('Expected batch to be { inputIds, attentionMask?, tokenTypeIds?, shape: [B, T] }')
    const { shape } = batch
    if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((v) => Number.isSafeInteger(v) && v >= 1)) {
      throw new TypeError(`Expected batch.shape to be [B, T] with B, T >= 1 but received ${JSON.stringify(shape)}`)
    }
    const [B, T] = shape
    const n = B * T
    const ints = (name: string, v: unknown, fallback: number): Int32Array => {
      if (v === undefined) return new Int32Array(n).fill(fallback)
      if (!(v instanceof Int32Array)) throw new TypeError(`Expected batch.${name} to be an Int32Array`)
      if (v.length !== n) throw new RangeError(`Expected batch.${name} to hold B*T = ${n} entries but it holds ${v.length}`)
      return v
    }
    const inputIds = ints('inputIds', batch.inputIds, -1)
    if (batch.inputIds === undefined) throw new TypeError('batch.inputIds is required')
    const attentionMask = ints('attentionMask', batch.attentionMask, 1)
    const tokenTypeIds = ints('tokenTypeIds', batch.tokenTypeIds, 0)
    // A model without token types (DistilBERT, MPNet) adds a row of zeros (zeroTypeRow) for type 0: what a tokenizer
    // gives single sentences. Another type would be a pair's second sentence, which it cannot tell apart.
    const types = Math.max(1, c.typeVocabSize)
    for (let i = 0; i < n; i++) {
      if (inputIds[i] < 0 || inputIds[i] >= c.vocabSize)
        throw new RangeError(`batch.inputIds[${i}] = ${inputIds[i]} is outside the vocabulary [0, ${c.vocabSize})`)
      if (tokenTypeIds[i] < 0 || tokenTypeIds[i] >= types)
        throw new RangeError(
          c.typeVocabSize === 0
            ? `batch.tokenTypeIds[${i}] = ${tokenTypeIds[i]}: this ${c.modelType} model has no token types (pass zeros or none)`
            : `batch.tokenTypeIds[${i}] = ${tokenTypeIds[i]} is outside [0, ${c.typeVocabSize})`,
        )
      if (attentionMask[i] !== 0 && attentionMask[i] !== 1) throw new RangeError(`batch.attentionMask[${i}] must be 0 or 1`)
    }
    const positionIds = this.positions(inputIds, B, T)
    if (batch.positionIds !== undefined) {
      const given = batch.positionIds
      if (!(given instanceof Int32Array) || given.length !== n || given.some((p, i) => p !== positionIds[i]))
        throw new RangeError("batch.positionIds must be the model's own position ids (positionIdsFor(batch))")
      return { inputIds, attentionMask, tokenTypeIds, positionIds: given }
    }
    return { inputIds, attentionMask, tokenTypeIds, positionIds }
  }

  // BERT: 0..T-1. RoBERTa and MPNet (transformers' create_position_ids_from_input_ids): padding tokens get
  // padding_idx, real tokens padding_idx + 1 + their index among the real tokens.
  private positions(ids: Int32Array, B: number, T: number): Int32Array {
    const c = this.config
    const out = new Int32Array(B * T)
    const off = positionOffset(c)
    for (let b = 0; b < B; b++) {
      let count = 0
      for (let t = 0; t < T; t++) {
        const i = b * T + t
        if (paddingAwarePositions(c)) out[i] = ids[i] === c.padTokenId ? c.padTokenId : off + count++
        else out[i] = t
        if (out[i] >= c.maxPositionEmbeddings)
          throw new RangeError(`sequence length ${T} exceeds the model's ${c.maxPositionEmbeddings} positions`)
      }
    }
    return out
  }

  private run(batch: BatchInput, options: Saved['options'] | null): { acts: AnyActivations; input: Saved['batch'] } {
    const input = this.checkBatch(batch)
    const [B, T] = batch.shape
    const acts = this.acquire(B, T, options !== null)
    this.encode(input, acts, options)
    return { acts, input }
  }

  /** The encoder's ops over a checked batch, into `acts` (eval mode when options is null). */
  private encode(input: Saved['batch'], acts: AnyActivations, options: Saved['options'] | null): void {
    if (this.modern) {
      // int8 (quantizeInt8): the eval passes' four products a layer.
      const int8 = options === null ? this.int8Layers : null
      return this.modern.encode(this.mp!, input, acts as ModernActivations, (site, p) => this.dropoutOptions(options, site, p), int8)
    }
    this.encodeBert(input, acts as Activations, options)
  }

  private encodeBert(input: Saved['batch'], acts: Activations, options: Saved['options'] | null): void {
    const { B, T } = acts
    const c = this.config,
      H = c.hiddenSize
    const P = this.p!
    ops.embeddingForward(
      acts.embSum,
      input.inputIds,
      input.positionIds,
      input.tokenTypeIds,
      P.wordEmbeddings,
      P.positionEmbeddings,
      P.tokenTypeEmbeddings ?? this.zeroTypeRow!,
    )
    // At bf16 each LayerNorm, the attention and the MLP's GELU also write their output's bf16 copy when a linear
    // layer reads it next (bf16Next; on CUDA: kernels/bf16_handoff.cuh): the embeddings' only when no dropout
    // follows.
    const bf16 = this.precision === 'bf16',
      L = c.numHiddenLayers
    const embDropped = this.dropoutOptions(options, 0, c.hiddenDropoutProb) !== null
    ops.layerNormForward(
      acts.embOut,
      acts.embMean,
      acts.embRstd,
      acts.embSum,
      P.embeddingNorm.weight,
      P.embeddingNorm.bias,
      c.layerNormEps,
      bf16 && L > 0 && !embDropped,
    )
    this.dropoutForward(acts.embOut, options, 0, c.hiddenDropoutProb, B)
    // MPNet: the relative-position bias of this length, from the table every layer shares.
    if (P.relativeAttentionBias) ops.relativeBiasForward(acts.relBias!, P.relativeAttentionBias)
    // Training on CUDA: the two residual LayerNorms write their outputs (h1, h2) only as the bf16 copies the next
    // products read ('only'), and each reads its residual x recomputed from the LayerNorm before it (its kept input
    // and statistics) instead of that LayerNorm's fp32 output, as the backward does. The last layer's output, which
    // the pooling reads, is written.
    const recompute = options !== null && this.device === 'cuda'
    const outNext = (next: boolean) => (next && recompute ? 'only' : next)
    for (let l = 0; l < L; l++) {
      const a = acts.layers[l]
      const w = P.layers[l]
      const x = l === 0 ? acts.embOut : acts.layers[l - 1].h2
      const prev = l > 0 ? acts.layers[l - 1] : null
      const residual1: Tensor | ops.LayerNormInput =
        recompute && prev
          ? {
              x: prev.res2,
              mean: prev.mean2,
              rstd: prev.rstd2,
              weight: P.layers[l - 1].outputNorm.weight,
              bias: P.layers[l - 1].outputNorm.bias,
            }
          : x
      // int8 (quantizeInt8): the eval passes' four products; the rest as at fp32.
      const q = options === null ? this.int8Layers?.[l] : undefined
      // q, k and v in one product: [BT, 3H] = x · [Wq; Wk; Wv]ᵀ + [bq; bk; bv].
      // In bf16 training on CUDA, at T <= 128 (attentionKeptBf16), q | k | v and ctx are kept in bfloat16: the product
      // stores them rounded, as the attention and the next product read them (Bf16Values; no handoff for ctx).
      if (a.qkv instanceof Bf16Values) ops.linearForward(a.qkv, x, w.qkv.weight, w.qkv.bias, this.precision)
      else if (q) ops.linearInt8Forward(a.qkv.view(0, [B * T, 3 * H]), x, q.qkv, w.qkv.bias)
      else ops.linearForward(a.qkv.view(0, [B * T, 3 * H]), x, w.qkv.weight, w.qkv.bias, this.precision)
      ops.attentionForward(
        a.ctx instanceof Bf16Values ? a.ctx : a.ctx.view(0, [B, T, H]),
        a.probs,
        a.qkv,
        null,
        null,
        input.attentionMask,
        c.numAttentionHeads,
        this.dropoutOptions(options, this.site(l, 0), c.attentionProbsDropoutProb),
        bf16 && !(a.ctx instanceof Bf16Values), // ctx: the input of attention.output.dense, next
        acts.relBias,
        this.precision,
      )
      // Each sublayer's output y goes into the LayerNorm output's buffer, or in bf16 training into acts.yBf16 (stored
      // rounded by its product, as autocast's linear layers return it); one fused op then forms res = x + dropout(y)
      // and LayerNorm(res) over it.
      const y1 = acts.yBf16 ?? a.h1
      if (q)
        ops.linearInt8Forward(a.h1, a.ctx as Tensor, q.attentionOutput, w.attentionOutput.bias) // eval: fp32
      else ops.linearForward(y1, a.ctx, w.attentionOutput.weight, w.attentionOutput.bias, this.precision)
      const drop1 = this.dropoutOptions(options, this.site(l, 1), attentionOutputDropoutProb(c))
      ops.residualLayerNormForward(
        a.h1,
        a.res1,
        a.mean1,
        a.rstd1,
        y1,
        residual1,
        w.attentionNorm.weight,
        w.attentionNorm.bias,
        c.layerNormEps,
        B,
        drop1,
        outNext(bf16),
        a.h1Bf16, // kept for intermediate.dense's weight gradient (keepsNormCopies), and handed to its product
      )
      // intermediate.dense and its GELU in one op (interAct = GELU(inter); inter kept for the backward; in
      // inference interAct is inter: the GELU in place).
      if (q) {
        ops.linearInt8Forward(a.inter as Tensor, a.h1, q.intermediate, w.intermediate.bias, a.interAct) // eval: fp32
        ops.linearInt8Forward(a.h2, a.interAct, q.output, w.output.bias)
      } else {
        // interAct's only reader is output.dense's product, which at bf16 reads its bf16 copy ('only': on CUDA the
        // fp32 values are not written; the backward recomputes GELU(inter)). In bf16 training inter is kept in
        // bfloat16 (Bf16Values): the product stores it rounded, both GELU passes read it so.
        // In bf16 training on CUDA the GELU writes bf16(GELU(inter)) alone into the layer's actBf16 (keepsGeluCopies),
        // which output.dense's product reads here and its weight gradient in the backward.
        const next = bf16 ? 'only' : false
        const act = a.actBf16 ?? a.interAct
        ops.linearForward(a.inter, a.h1, w.intermediate.weight, w.intermediate.bias, this.precision, act, a.actBf16 ? false : next)
        ops.linearForward(acts.yBf16 ?? a.h2, act, w.output.weight, w.output.bias, this.precision)
      }
      const drop2 = this.dropoutOptions(options, this.site(l, 2), c.hiddenDropoutProb)
      const residual2: Tensor | ops.LayerNormInput = recompute
        ? { x: a.res1, mean: a.mean1, rstd: a.rstd1, weight: w.attentionNorm.weight, bias: w.attentionNorm.bias }
        : a.h1
      ops.residualLayerNormForward(
        a.h2,
        a.res2,
        a.mean2,
        a.rstd2,
        acts.yBf16 ?? a.h2,
        residual2,
        w.outputNorm.weight,
        w.outputNorm.bias,
        c.layerNormEps,
        B,
        drop2,
        outNext(bf16 && l < L - 1),
        a.h2Bf16, // kept for the next layer's q/k/v weight gradient (null in the last layer)
      )
    }
  }
}

/** The precision option, validated ('fp32' when absent). */
function checkPrecision(p: Precision | undefined): Precision {
  if (p === undefined) return 'fp32'
  if (p !== 'fp32' && p !== 'bf16') throw new TypeError(`BertModel: precision must be 'fp32' or 'bf16' (got ${String(p)})`)
  return p
}

/**
 * Whether a bf16 model on `device` keeps the attention's arrays in bf16 (BertModel.attentionBf16): on CUDA by default;
 * SIMCSEPP_ATTENTION_STORAGE=fp32 keeps them in fp32 (to compare both in one process), 'bf16' in bf16 on either device.
 */
function attentionStorageBf16(device: Device): boolean {
  const v = process.env.SIMCSEPP_ATTENTION_STORAGE
  if (v !== undefined && v !== '' && v !== 'bf16' && v !== 'fp32')
    throw new Error(`SIMCSEPP_ATTENTION_STORAGE must be 'bf16' or 'fp32', not '${v}'`)
  return v === 'bf16' || (v !== 'fp32' && device === 'cuda')
}

/**
 * Whether a CUDA model's bias gradients are summed by the ops that make the gradients (the default) or, with
 * SIMCSEPP_BIAS_SUMS=products, by the linear layers' backward ops in passes over those gradients, as before
 * (gpu-check times both in one run). Read at each backward, as the native switches are at each op.
 */
function biasSumsInProducers(): boolean {
  const v = process.env.SIMCSEPP_BIAS_SUMS
  if (v !== undefined && v !== 'producers' && v !== 'products')
    throw new Error(`SIMCSEPP_BIAS_SUMS must be 'producers' or 'products', not '${v}'`)
  return v !== 'products'
}

/** ModelOptions.dense: a chain from the hidden size, positive integer widths, a known activation; not with mlp. */
function checkDenseOptions(c: BertConfig, options: ModelOptions, source: string): void {
  const dense = options.dense ?? []
  if (!Array.isArray(dense)) throw new TypeError(`${source}: dense must be an array of Dense modules`)
  if (dense.length && options.mlp) throw new Error(`${source}: a model trains its Dense modules or an MLP head, not both`)
  let width = c.hiddenSize
  dense.forEach((d, i) => {
    const what = `${source}: dense[${i}]`
    for (const k of ['inFeatures', 'outFeatures'] as const)
      if (!Number.isSafeInteger(d?.[k]) || d[k] < 1 || d[k] > 1 << 20) throw new RangeError(`${what}.${k} must be an integer in [1, 2^20]`)
    if (d.inFeatures !== width) throw new RangeError(`${what}.inFeatures is ${d.inFeatures}, but it is given vectors of ${width}`)
    if (typeof d.bias !== 'boolean') throw new TypeError(`${what}.bias must be true or false`)
    if (d.activation !== 'tanh' && d.activation !== 'identity') throw new TypeError(`${what}.activation must be 'tanh' or 'identity'`)
    width = d.outFeatures
  })
}
