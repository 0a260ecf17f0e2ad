// Embedding quantization as sentence-transformers' quantize_embeddings: vectors stored in a quarter (int8, uint8) or a
// thirty-second (binary, ubinary) of float32's bytes, for vector databases and for BinaryIndex.
//
//   int8 / uint8   each dimension's range [min, max] (from `ranges`, else from `calibration` vectors, else from the
//                  vectors themselves) cut into 256 buckets: q = clip(floor((x - min) / step), 0, 255) with
//                  step = (max - min) / 255 (1 where max = min), in float32 arithmetic as numpy computes it, so the
//                  bytes are sentence-transformers' own (tested); int8 stores q - 128.
//   ubinary        each dimension's sign as one bit (x > 0), 8 dimensions to a byte, the first in the high bit
//                  (numpy's packbits; the last byte zero-padded): ceil(D / 8) bytes.
//   binary         ubinary's bytes minus 128, as int8 (the byte's high bit flipped).
import { type VectorsInput } from './search.js'

export type EmbeddingPrecision = 'float32' | 'int8' | 'uint8' | 'binary' | 'ubinary'
const PRECISIONS: readonly EmbeddingPrecision[] = ['float32', 'int8', 'uint8', 'binary', 'ubinary']

/** Each dimension's smallest and largest value (sentence-transformers' `ranges`: rows 0 and 1). */
export interface QuantizationRanges {
  min: Float32Array
  max: Float32Array
}

export interface QuantizeOptions {
  /** int8 / uint8: each dimension's range (from quantizationRanges of a representative sample). */
  ranges?: QuantizationRanges
  /** int8 / uint8 without ranges: vectors whose ranges are used (else the vectors' own, which depend on the batch). */
  calibration?: VectorsInput
  /** The length of each vector, when `vectors` is one flat Float32Array. */
  dimension?: number
}

function failQuantize(message: string): never {
  throw new Error(`quantize: ${message}`)
}
const fail = failQuantize

/**
 * `input` as one flat Float32Array (itself, or a copy of an array of vectors), checked: a shape, and finite values.
 * `fail` throws the caller's error (quantize's, search's).
 */
export function floatRows(
  name: string,
  input: VectorsInput,
  dimension: number | undefined,
  fail: (message: string) => never = failQuantize,
): { flat: Float32Array; rows: number; dim: number } {
  let flat: Float32Array, rows: number, dim: number
  if (input instanceof Float32Array) {
    if (dimension === undefined) fail(`${name} is a flat Float32Array: give its dimension`)
    if (!Number.isSafeInteger(dimension) || dimension < 1) fail(`dimension must be a positive integer, got ${JSON.stringify(dimension)}`)
    dim = dimension
    if (input.length % dim !== 0) fail(`${name} holds ${input.length} floats, not a multiple of the dimension ${dim}`)
    flat = input
    rows = input.length / dim
  } else if (Array.isArray(input)) {
    rows = input.length
    dim = dimension ?? (rows > 0 ? (input[0] as ArrayLike<number>)?.length : 0)
    flat = new Float32Array(rows * dim)
    for (let r = 0; r < rows; r++) {
      const v = input[r] as ArrayLike<number>
      if (!v || typeof v !== 'object' || typeof v.length !== 'number') fail(`${name}[${r}] is not a vector`)
      if (v.length !== dim) fail(`${name}[${r}] has ${v.length} dimensions, expected ${dim}`)
      flat.set(v, r * dim)
    }
  } else fail(`${name} must be an array of vectors or a flat Float32Array`)
  if (rows === 0) fail(`${name} is empty`)
  if (!Number.isSafeInteger(dim) || dim < 1) fail(`${name}: the dimension must be a positive integer, got ${dim}`)
  for (let i = 0; i < flat.length; i++)
    if (!Number.isFinite(flat[i])) fail(`${name}[${Math.floor(i / dim)}][${i % dim}] is ${flat[i]}, not a finite number`)
  return { flat, rows, dim }
}

/** Each dimension's smallest and largest value over `vectors` (a calibration sample: thousands of vectors or more). */
export function quantizationRanges(vectors: VectorsInput, dimension?: number): QuantizationRanges {
  const { flat, rows, dim } = floatRows('vectors', vectors, dimension)
  const min = flat.slice(0, dim),
    max = flat.slice(0, dim)
  for (let r = 1; r < rows; r++)
    for (let j = 0; j < dim; j++) {
      const x = flat[r * dim + j]
      if (x < min[j]) min[j] = x
      if (x > max[j]) max[j] = x
    }
  return { min, max }
}

function checkedRanges(ranges: QuantizationRanges, dim: number): QuantizationRanges {
  if (ranges === null || typeof ranges !== 'object') fail('ranges must be { min, max }')
  for (const key of ['min', 'max'] as const) {
    const v = ranges[key] as unknown
    if (!(v instanceof Float32Array) && !Array.isArray(v)) fail(`ranges.${key} must be a Float32Array or an array of numbers`)
    const a = v as ArrayLike<number>
    if (a.length !== dim) fail(`ranges.${key} has ${a.length} values, the vectors ${dim} dimensions`)
    for (let j = 0; j < dim; j++) if (!Number.isFinite(a[j])) fail(`ranges.${key}[${j}] is ${a[j]}, not a finite number`)
  }
  const min = Float32Array.from(ranges.min),
    max = Float32Array.from(ranges.max)
  for (let j = 0; j < dim; j++) if (min[j] > max[j]) fail(`ranges.min[${j}] (${min[j]}) is above ranges.max[${j}] (${max[j]})`)
  return { min, max }
}

/** The rows `rows` x `width` of one flat array, as views of it. */
function splitRows<A extends Float32Array | Int8Array | Uint8Array>(flat: A, rows: number, width: number): A[] {
  return Array.from({ length: rows }, (_, r) => flat.subarray(r * width, (r + 1) * width) as A)
}

/**
 * `vectors` quantized to `precision` (see the file's header), one typed array per vector, views of one buffer:
 * Int8Array for int8 and binary, Uint8Array for uint8 and ubinary, Float32Array (a copy) for float32.
 */
export function quantizeEmbeddings(vectors: VectorsInput, precision: 'int8' | 'binary', options?: QuantizeOptions): Int8Array[]
export function quantizeEmbeddings(vectors: VectorsInput, precision: 'uint8' | 'ubinary', options?: QuantizeOptions): Uint8Array[]
export function quantizeEmbeddings(vectors: VectorsInput, precision: 'float32', options?: QuantizeOptions): Float32Array[]
export function quantizeEmbeddings(
  vectors: VectorsInput,
  precision: Exclude<EmbeddingPrecision, 'float32'>,
  options?: QuantizeOptions,
): Int8Array[] | Uint8Array[]
export function quantizeEmbeddings(
  vectors: VectorsInput,
  precision: EmbeddingPrecision,
  options?: QuantizeOptions,
): Float32Array[] | Int8Array[] | Uint8Array[]
export function quantizeEmbeddings(
  vectors: VectorsInput,
  precision: EmbeddingPrecision,
  options: QuantizeOptions = {},
): Float32Array[] | Int8Array[] | Uint8Array[] {
  if (!PRECISIONS.includes(precision)) fail(`precision must be one of ${PRECISIONS.join(', ')}, got ${JSON.stringify(precision)}`)
  if (options === null || typeof options !== 'object') fail('options must be an object')
  for (const key of Object.keys(options))
    if (!['ranges', 'calibration', 'dimension'].includes(key)) fail(`unknown option ${JSON.stringify(key)}`)
  const { flat, rows, dim } = floatRows('vectors', vectors, options.dimension)
  if (precision === 'float32') return splitRows(flat.slice(), rows, dim)
  if (precision === 'binary' || precision === 'ubinary') {
    if (options.ranges !== undefined || options.calibration !== undefined)
      fail(`ranges and calibration apply to int8 and uint8, not ${precision}`)
    const packed = packSigns(flat, rows, dim)
    const width = packed.length / rows
    return precision === 'ubinary' ? splitRows(packed, rows, width) : splitRows(toBinary(packed), rows, width)
  }
  if (options.ranges !== undefined && options.calibration !== undefined) fail('give ranges or calibration, not both')
  const ranges =
    options.ranges !== undefined
      ? checkedRanges(options.ranges, dim)
      : options.calibration !== undefined
        ? calibrationRanges(options.calibration, dim)
        : quantizationRanges(flat, dim)
  const q = bucketize(flat, dim, ranges)
  if (precision === 'uint8') return splitRows(q, rows, dim)
  const signed = new Int8Array(q.length)
  for (let i = 0; i < q.length; i++) signed[i] = q[i] - 128
  return splitRows(signed, rows, dim)
}

function calibrationRanges(calibration: VectorsInput, dim: number): QuantizationRanges {
  const r = quantizationRanges(calibration, calibration instanceof Float32Array ? dim : undefined)
  if (r.min.length !== dim) fail(`calibration vectors have ${r.min.length} dimensions, the vectors ${dim}`)
  return r
}

/** clip(floor((x - min) / step), 0, 255) in float32 arithmetic (numpy's, on float32 arrays). */
function bucketize(flat: Float32Array, dim: number, { min, max }: QuantizationRanges): Uint8Array {
  const f = Math.fround
  const step = new Float32Array(dim)
  for (let j = 0; j < dim; j++) {
    const s = f(f(max[j] - min[j]) / 255)
    step[j] = s === 0 ? 1 : s
  }
  const out = new Uint8Array(flat.length)
  for (let i = 0; i < flat.length; i++) {
    const j = i % dim
    const v = Math.floor(f(f(flat[i] - min[j]) / step[j]))
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v
  }
  return out
}

/** Each row's signs packed 8 to a byte, the first dimension in the high bit (numpy's packbits of x > 0). */
export function packSigns(flat: Float32Array, rows: number, dim: number): Uint8Array {
  const width = Math.ceil(dim / 8)
  const out = new Uint8Array(rows * width)
  for (let r = 0; r < rows; r++) {
    const x = r * dim,
      o = r * width
    for (let j = 0; j < dim; j++) if (flat[x + j] > 0) out[o + (j >> 3)] |= 0x80 >> (j & 7)
  }
  return out
}

/** ubinary bytes as binary (sentence-transformers' packbits - 128 as int8: the same bits with the high bit flipped). */
function toBinary(packed: Uint8Array): Int8Array {
  const out = new Int8Array(packed.length)
  for (let i = 0; i < packed.length; i++) out[i] = packed[i] - 128
  return out
}
