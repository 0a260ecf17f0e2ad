// Loads the compiled addon (a local build, else the package's prebuilt: addon-loader.ts) and describes its raw interface.
// Everything here is internal: the public API wraps it with validation and friendlier types.
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { addonCandidates, loadAddon } from './addon-loader.js'

/**
 * Where a call's rows sit in the whole batch whose dropout masks they draw (native/common/row_index.h):
 * - a number: the index of the first row (a micro-batch: row r draws the masks of row first + r);
 * - runs of `block` consecutive rows of the whole batch, `stride` rows apart, from row `first`, the call's
 *   row r being row skip + r of them (a data-parallel rank's sentences of every view): row r draws the
 *   masks of row first + ⌊(skip + r) / block⌋·stride + (skip + r) mod block.
 */
export type RowPlacement = number | { first: number; block: number; stride: number; skip?: number }

export type DeviceName = 'cpu' | 'cuda'

/**
 * Precision of the linear layers' matrix products: 'fp32', or 'bf16' (operands rounded to bfloat16,
 * products and sums in fp32, as the tensor cores compute; the CPU rounds the same way). native/ops/precision.h.
 */
/** The int8 linear layer's tile kernel (native/cpu/linear_int8.h): every one gives the same bits. */
export type Int8Kernel = 'avx512vnni' | 'avxvnni' | 'dotprod' | 'generic'
export type Precision = 'fp32' | 'bf16'

export interface NativeTensor {
  readonly shape: number[]
  readonly device: DeviceName
  readonly disposed: boolean
  toFloat32Array(out?: Float32Array): Float32Array
  copyFrom(data: Float32Array): void
  to(device: DeviceName): NativeTensor
  dispose(): void
  view(offset: number, shape: number[]): NativeTensor
  fill(value: number): void
  copyTensor(src: NativeTensor): void
  attachBf16Mirror(): boolean
}

/** What a replayed step graph left for the host: a loss op's result (times its weight) or a sum of squares. */
export interface GraphResult {
  kind: 'loss' | 'sumSquares'
  value: number
  /** The loss op's first non-finite input (0: none), as the eager op would have reported it. */
  nonFinite: number
}

/** What a step graph launch left for the host: its results, and the contents of its readback tensors. */
export interface GraphReadback {
  results: GraphResult[]
  readback: Float32Array[]
}

/** A CUDA step graph session (opaque; native/bind_graph.cpp). */
export type GraphSessionHandle = { readonly __graphSession: unique symbol }

/** One launch of a kernel profile (Addon.cudaKernelProfileStop). */
export interface KernelTime {
  name: string
  /** Device milliseconds between the events before and after it. */
  ms: number
  /** 2 M N K for a matrix product, else 0. */
  flops: number
  /** cudaTimerMark markers recorded before it was launched. */
  mark: number
  /**
   * On the emulator (emulator/traffic.cpp): the bytes of device memory it read and wrote, each 32-byte sector once
   * per launch (a product of the stand-in cuBLASLt: its operands once). Absent on a GPU.
   */
  readBytes?: number
  writtenBytes?: number
}

export interface CudaStatus {
  /** The CUDA kernels are compiled into this build. */
  compiled: boolean
  /** A CUDA device can be used now. */
  available: boolean
  /** The 'cuda' device is the host emulator (a SIMCSEPP_CUDA=emulate build): the real kernel sources run on the CPU, for tests. */
  emulated?: boolean
  /** Why CUDA is unavailable (no driver, no device, driver too old, not compiled). */
  reason?: string
  /** Device 0's name and compute capability, when available. */
  device?: string
  /**
   * The library the matrix products run on, when available: "cuBLASLt <version> (<path>)" (found at run
   * time and checked against the kernels), or "simcsepp kernels (<why not cuBLASLt>)".
   */
  gemm?: string
  /**
   * What the bf16 products of the linear layers read, when available: "bf16 copies (...)" (the operands rounded
   * once into bf16 copies, the default; then where the weights come from: the model's bf16 mirror, or rounded at
   * every product with SIMCSEPP_BF16_WEIGHT_MIRROR=0) or "fp32, rounded to bf16 inside the GEMM
   * (SIMCSEPP_BF16_OPERANDS=fp32)".
   */
  bf16Operands?: string
  /** Device 0's memory when available (cudaMemGetInfo at the time of the call). */
  memory?: { freeBytes: number; totalBytes: number }
}

export interface Addon {
  NativeTensor: new (shape: number[], device: DeviceName) => NativeTensor
  cudaStatus(): CudaStatus
  /** The ops (native/backend.h member names) this build implements on `device`; for CUDA, whether or not a GPU is usable now. */
  backendOps(device: DeviceName): string[]
  numThreads(): number
  philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): number[]
  /** Index of the first NaN or ±Infinity in `data`, or -1. */
  firstNonFinite(data: Float32Array): number
  /** CUDA step graphs (native/bind_graph.cpp; lib/model/step-graphs.ts is their caller). */
  /** A session; with `peer`, it joins the peer's group (one stream, one divergence flag, shared launches). */
  graphSession(bytes: number[], maxRows: number, peer?: GraphSessionHandle): GraphSessionHandle
  graphCapture(session: GraphSessionHandle, arrays: (Int32Array | Uint8Array | Float32Array)[], record: () => void): number
  graphLaunch(
    session: GraphSessionHandle,
    index: number,
    arrays: (Int32Array | Uint8Array | Float32Array)[],
    offsetDelta: bigint,
    lr: number,
    step: number,
    readback?: NativeTensor[],
    clearSkip?: boolean,
  ): number
  /** What launch `ticket` left for the host (waits for it): its results and its readback tensors' contents. */
  graphResults(session: GraphSessionHandle, ticket: number): GraphReadback
  graphSessionFree(session: GraphSessionHandle): void
  /** Bytes of tensor storage (host and device) allocated now, and bytes reported to V8 as external memory. */
  tensorMemory(): { heldBytes: number; reportedBytes: number }
  /**
   * Since the process started: elements the bf16 products rounded into operand copies, refreshes of stale bf16
   * weight mirrors, the device bytes live mirrors hold (kernels/bf16_mirror.cuh), and elements producers wrote
   * as bf16 copies for the next product (kernels/bf16_handoff.cuh). Zeros without CUDA.
   */
  bf16Counters(): { convertedElements: number; mirrorRefreshes: number; mirrorBytes: number; handedOffElements: number }
  /**
   * Fused CPU search (native/cpu/search.h): rows [rowBegin, rowEnd) of `corpus` ([N, D], CPU) dotted with each
   * of the Q queries (Q·D floats), their k best merged into topScores / topIndices ([Q, k], best first; equal
   * scores: lower index first; index -1: no hit yet).
   */
  searchTopK(
    corpus: NativeTensor,
    queries: Float32Array,
    k: number,
    rowBegin: number,
    rowEnd: number,
    topScores: Float32Array,
    topIndices: Int32Array,
  ): void
  /**
   * Hamming top-k over bit-packed rows (native/cpu/hamming_search.h): rows [rowBegin, rowEnd) of `corpus`
   * (bytesPerRow bytes each) against each query (Q·bytesPerRow bytes), minus their distances merged into topScores /
   * topIndices as searchTopK merges its scores (nearest first; equal distances: lower index first).
   */
  hammingTopK(
    corpus: Uint8Array | Int8Array,
    bytesPerRow: number,
    queries: Uint8Array | Int8Array,
    k: number,
    rowBegin: number,
    rowEnd: number,
    topScores: Float32Array,
    topIndices: Int32Array,
  ): void
  /**
   * Each row of `t` ([N, D], CPU) scaled to unit length in place, with lib/embed/search.ts's unitRows arithmetic
   * (native/cpu/unit_rows.h); returns -1, or the flat index of the first element that is not finite.
   */
  unitRows(t: NativeTensor): number
  /**
   * The CPU's int8 linear layer (native/bind_int8.cpp, native/cpu/linear_int8.h): int8PackedFloats sizes the tensor
   * that int8PackWeight quantizes an [OC, C] weight into (bytes, not floats); linearInt8Forward(out [R, OC],
   * inp [R, C], packed, bias [OC] | null, geluOut | null); int8Kernel names the tile kernel (force: a name to
   * use from now on, an Error where this CPU cannot run it).
   */
  /** Whether attention at bf16 takes bf16 operands at length T and this head size (native/ops/encoder.h). */
  attentionTakesBf16(T: number, headSize: number): boolean
  /** Whether CUDA's attention backward at bf16 forms P itself when given no probs (native/ops/encoder.h). */
  attentionFormsProbs(T: number, headSize: number): boolean
  int8PackedFloats(OC: number, C: number): number
  int8PackWeight(packed: NativeTensor, weight: NativeTensor): void
  linearInt8Forward(
    out: NativeTensor,
    inp: NativeTensor,
    packed: NativeTensor,
    bias: NativeTensor | null,
    geluOut: NativeTensor | null,
  ): void
  int8Kernel(force?: Int8Kernel): Int8Kernel
  /** Loads MPI (dlopen) and initialises it once (native/bind_dist.cpp); throws naming the libraries tried. */
  distInit(): { rank: number; size: number; library: string; flavour: string; version: string }
  /** In place: the sum of t over every rank (CUDA tensors: NCCL, or MPI on host copies). */
  distAllReduceSum(t: NativeTensor): void
  /** In place: rank r's counts[r] elements, at offset sum(counts[0..r)) of t, sent to every rank. */
  distAllGather(t: NativeTensor, counts: number[]): void
  distBroadcast(t: NativeTensor, root: number): void
  /** The largest x over the ranks. */
  distMax(x: number): number
  distBarrier(): void
  /** MPI_Abort: ends every rank of the job with this exit code. Does not return. */
  distAbort(code: number): never
  distFinalize(): void
  /** Tensor bytes handed to the collectives so far; how CUDA tensors travel, once decided. */
  distStats(): { bytes: number; cudaPath?: string }
  simcse(
    z1: NativeTensor,
    z2: NativeTensor,
    z3: NativeTensor | null,
    temperature: number,
    gz1: NativeTensor,
    gz2: NativeTensor,
    gz3: NativeTensor | null,
    weight: number,
    accumulate: boolean,
  ): number
  offDropout(
    z1: NativeTensor,
    z2: NativeTensor,
    z0: NativeTensor,
    temperature: number,
    posScale: number,
    gz1: NativeTensor,
    gz2: NativeTensor,
    gz0: NativeTensor,
    weight: number,
    accumulate: boolean,
  ): number
  dcl(
    z1: NativeTensor,
    z2: NativeTensor,
    temperature: number,
    gz1: NativeTensor,
    gz2: NativeTensor,
    weight: number,
    accumulate: boolean,
  ): number
  cosent(
    z1: NativeTensor,
    z2: NativeTensor,
    scores: Float32Array,
    temperature: number,
    gz1: NativeTensor,
    gz2: NativeTensor,
    weight: number,
    accumulate: boolean,
    similarity?: 'cosine' | 'angle',
  ): number
  mse(z: NativeTensor, target: Float32Array, gz: NativeTensor, weight: number, accumulate: boolean): number
  dropout(
    x: NativeTensor,
    out: NativeTensor,
    p: number,
    seed: number | bigint,
    offset: number | bigint,
    keepRows: Uint8Array | null,
    firstRow?: RowPlacement,
  ): void
  /** Benchmark baseline (CPU or CUDA tensors): separate ops with the N×N logits in memory. Throws a
   * RangeError mentioning "would not fit" when the logits exceed the CPU limit or free device memory. */
  offDropoutUnfused(
    z1: NativeTensor,
    z2: NativeTensor,
    z0: NativeTensor,
    temperature: number,
    posScale: number,
    gz1: NativeTensor,
    gz2: NativeTensor,
    gz0: NativeTensor,
  ): { loss: number; workspaceBytes: number }
  /** Bytes the fused offDropout of `device` allocates for n×d inputs. */
  offDropoutWorkspaceBytes(n: number, d: number, device: DeviceName): number
  /**
   * GPU-time markers of the op profile (lib/bench/op-profile.ts): cudaTimerMark records an event on the op
   * stream and returns its index; cudaTimerElapsed(a, b) waits for mark b and returns the device's milliseconds
   * from a to b (RangeError for a mark not recorded since the last cudaTimerReset). Not during a graph capture.
   */
  cudaTimerMark(): number
  cudaTimerElapsed(a: number, b: number): number
  cudaTimerReset(): void
  /**
   * Per-kernel device times (kernels/kernel_profile.cuh): from cudaKernelProfileStart until cudaKernelProfileStop,
   * every kernel, cuBLASLt product, device copy and fill launched outside a graph capture gets a record; Stop waits
   * for the device and returns them in launch order (empty when no profile was open). `mark`: the cudaTimerMark
   * markers recorded before the launch; `flops`: 2 M N K for a product, else 0. Start throws where CUDA is unavailable.
   */
  cudaKernelProfileStart(): void
  cudaKernelProfileStop(): KernelTime[]
  gemm(
    c: NativeTensor,
    a: NativeTensor,
    b: NativeTensor,
    transA: boolean,
    transB: boolean,
    alpha: number,
    beta: number,
    useSystemBlas: boolean,
    precision?: Precision,
  ): void
  gemmInfo(): {
    kernel: string
    /** How the bf16 products run: 'amx', 'avx512bf16', 'rounded while packed' or 'rounded copies' (native/cpu/gemm.h). */
    bf16Kernel: string
    /** The attention products' kernel (native/cpu/attention.cpp): 'avx512', 'avx2' or 'generic'. */
    attentionKernel: string
    /** The GELU loops' instruction set (native/cpu/bert_ops.cpp): 'avx512', 'avx2' (with FMA) or 'baseline'; the same bits. */
    geluKernel: string
    /** The vector search's dot products (native/cpu/search.cpp): 'avx512', 'avx2' or 'generic'; the same bits. */
    searchKernel: string
    hammingKernel: string
    threads: number
    systemBlas?: string
    systemBlasCore?: string
  }
  // BERT encoder ops (native/bind_encoder.cpp; on CUDA those in backendOps('cuda')). Outputs first; see lib/ops.ts.
  embeddingForward(
    out: NativeTensor,
    ids: Int32Array,
    posIds: Int32Array,
    typeIds: Int32Array,
    word: NativeTensor,
    pos: NativeTensor,
    type: NativeTensor,
  ): void
  embeddingBackward(
    dword: NativeTensor | null,
    dpos: NativeTensor | null,
    dtype: NativeTensor | null,
    dout: NativeTensor,
    ids: Int32Array,
    posIds: Int32Array,
    typeIds: Int32Array,
  ): void
  layerNormForward(
    out: NativeTensor,
    mean: NativeTensor,
    rstd: NativeTensor,
    inp: NativeTensor,
    weight: NativeTensor,
    bias: NativeTensor,
    eps: number,
    bf16Next?: boolean,
  ): void
  layerNormApply(
    out: NativeTensor,
    inp: NativeTensor,
    mean: NativeTensor,
    rstd: NativeTensor,
    weight: NativeTensor,
    bias: NativeTensor,
  ): void
  layerNormBackward(
    dinp: NativeTensor,
    dweight: NativeTensor,
    dbias: NativeTensor,
    dout: NativeTensor,
    inp: NativeTensor,
    weight: NativeTensor,
    mean: NativeTensor,
    rstd: NativeTensor,
  ): void
  residualLayerNormForward(
    out: NativeTensor,
    res: NativeTensor,
    mean: NativeTensor,
    rstd: NativeTensor,
    y: NativeTensor,
    x: NativeTensor | null,
    weight: NativeTensor,
    bias: NativeTensor,
    eps: number,
    sentences: number,
    p: number,
    seed: number | bigint,
    offset: number | bigint,
    keepRows: Uint8Array | null,
    firstRow: RowPlacement,
    bf16Next?: boolean | 'only',
    /** x null: the LayerNorm whose output x is (input, mean, rstd, weight, bias), recomputed. */
    xInputX?: NativeTensor | null,
    xInputMean?: NativeTensor | null,
    xInputRstd?: NativeTensor | null,
    xInputWeight?: NativeTensor | null,
    xInputBias?: NativeTensor | null,
    /** Also bf16(out) here: ceil(R·C / 2) floats holding R·C bf16 values. */
    outBf16?: NativeTensor | null,
    /** y holds R·C bf16 values (ceil(R·C / 2) floats). */
    yBf16?: boolean,
  ): void
  layerNormDropoutBackward(
    dres: NativeTensor,
    dy: NativeTensor | null,
    dweight: NativeTensor,
    dbias: NativeTensor,
    dout: NativeTensor,
    res: NativeTensor,
    weight: NativeTensor,
    mean: NativeTensor,
    rstd: NativeTensor,
    sentences: number,
    p: number,
    seed: number | bigint,
    offset: number | bigint,
    keepRows: Uint8Array | null,
    firstRow: RowPlacement,
    bf16Next?: boolean | 'only',
    /** [C]: += the column sums of dy (dres without dy), the bias gradient of the linear layer before. */
    dyColumnSums?: NativeTensor | null,
  ): void
  linearForward(
    out: NativeTensor,
    inp: NativeTensor,
    weight: NativeTensor,
    bias: NativeTensor | null,
    precision: Precision,
    geluOut?: NativeTensor | null,
    bf16Next?: boolean | 'only',
    outBf16?: boolean,
    inpBf16?: boolean,
    /** R, with both outBf16 and inpBf16 (neither holds fp32 rows). */
    rows?: number,
    /** geluOut holds the GELU's bf16 values (with outBf16, no bf16Next), kept for the next layer's weight gradient. */
    geluOutBf16?: boolean,
  ): void
  linearBackward(
    dinp: NativeTensor | null,
    dweight: NativeTensor,
    dbias: NativeTensor | null,
    dout: NativeTensor,
    inp: NativeTensor | null,
    weight: NativeTensor,
    accumulateInput: boolean,
    precision: Precision,
    geluInput?: NativeTensor | null,
    bf16Next?: boolean | 'only',
    layerNormX?: NativeTensor | null,
    layerNormMean?: NativeTensor | null,
    layerNormRstd?: NativeTensor | null,
    layerNormWeight?: NativeTensor | null,
    layerNormBias?: NativeTensor | null,
    dinpColumnSums?: NativeTensor | null,
    geluInputBf16?: boolean,
    inpBf16?: boolean,
    dinpBf16?: boolean,
  ): void
  gegluForward(out: NativeTensor, u: NativeTensor): void
  gegluBackward(du: NativeTensor, u: NativeTensor, dout: NativeTensor): void
  rope(qkv: NativeTensor, numHeads: number, theta: number, inverse: boolean): void
  geluForward(out: NativeTensor, inp: NativeTensor): void
  geluBackward(dinp: NativeTensor, inp: NativeTensor, dout: NativeTensor): void
  tanhForward(out: NativeTensor, inp: NativeTensor): void
  tanhBackward(dinp: NativeTensor, out: NativeTensor, dout: NativeTensor): void
  add(out: NativeTensor, a: NativeTensor, b: NativeTensor): void
  addInplace(dst: NativeTensor, src: NativeTensor): void
  leadingColumns(out: NativeTensor, inp: NativeTensor): void
  addLeadingColumns(dinp: NativeTensor, dout: NativeTensor, scale: number): void
  scaleInplace(x: NativeTensor, s: number): void
  /** Clips g to global L2 norm maxNorm as torch does; returns the sum of squares before clipping. */
  clipGradNorm(g: NativeTensor, maxNorm: number): number
  /** clipGradNorm's sum of squares, and into scale[0] the factor it would apply (1: none); g is untouched. */
  clipGradScale(g: NativeTensor, maxNorm: number, scale: NativeTensor): number
  attentionForward(
    ctx: NativeTensor,
    probs: NativeTensor | null,
    q: NativeTensor,
    k: NativeTensor | null,
    v: NativeTensor | null,
    mask: Int32Array,
    numHeads: number,
    p: number,
    seed: number | bigint,
    offset: number | bigint,
    keepRows: Uint8Array | null,
    firstRow?: RowPlacement,
    bf16Next?: boolean,
    /** [2T-1, NH]: MPNet's relative-position bias, added to the scores. */
    relBias?: NativeTensor | null,
    /** 'bf16': the products' operands rounded to bfloat16 (T <= 128 and HS <= 64; native/ops/encoder.h). */
    precision?: Precision,
    /** [B, T, H]: the packed q (k, v null) and ctx hold bf16 values, two a float (bf16 at those shapes only). */
    bf16Shape?: number[] | null,
  ): void
  attentionBackward(
    dq: NativeTensor,
    dk: NativeTensor | null,
    dv: NativeTensor | null,
    dctx: NativeTensor,
    q: NativeTensor,
    k: NativeTensor | null,
    v: NativeTensor | null,
    probs: NativeTensor | null,
    mask: Int32Array,
    numHeads: number,
    p: number,
    seed: number | bigint,
    offset: number | bigint,
    keepRows: Uint8Array | null,
    firstRow?: RowPlacement,
    bf16Next?: boolean | 'only',
    relBias?: NativeTensor | null,
    /** [B, 2T-1, NH]: each sentence's gradient of relBias (overwritten). */
    dRelBias?: NativeTensor | null,
    precision?: Precision,
    /** [3H] (packed only): += the packed gradient's column sums (the q/k/v projection's bias gradient). */
    dqkvColumnSums?: NativeTensor | null,
    /** [B, T, H]: the packed q (k, v null) and dctx hold bf16 values (as the forward's). */
    bf16Shape?: number[] | null,
  ): void
  relativeBiasForward(out: NativeTensor, table: NativeTensor): void
  relativeBiasBackward(dtable: NativeTensor, dRel: NativeTensor): void
  poolClsForward(out: NativeTensor, hidden: NativeTensor): void
  poolClsBackward(dhidden: NativeTensor, dout: NativeTensor, accumulate: boolean): void
  poolMeanForward(out: NativeTensor, hidden: NativeTensor, mask: Int32Array, sqrtLen?: boolean): void
  poolMeanBackward(dhidden: NativeTensor, dout: NativeTensor, mask: Int32Array, accumulate: boolean, sqrtLen?: boolean): void
  poolMaxForward(out: NativeTensor, hidden: NativeTensor, mask: Int32Array): void
  poolMaxBackward(dhidden: NativeTensor, dout: NativeTensor, hidden: NativeTensor, mask: Int32Array, accumulate: boolean): void
  adamwStep(
    params: NativeTensor,
    grads: NativeTensor,
    m: NativeTensor,
    v: NativeTensor,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
    /** One element: multiplies every gradient before the update (clipGradScale's factor). */
    gradScale?: NativeTensor | null,
  ): void
  gradSumSquares(g: NativeTensor): number
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..')

export const addon: Addon = loadAddon(addonCandidates(packageRoot), createRequire(import.meta.url) as (path: string) => Addon)
