// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian header length N][N bytes of JSON header][raw little-endian tensor data]
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the
// start of the data section) plus an optional "__metadata__" map of strings.
// We read floats into Float32Array whatever their stored precision, because every op in simcsepp works
// in fp32; we write F32 by default so a checkpoint round-trips bit for bit.

import { promises as fsp } from 'node:fs'
import { endianness } from 'node:os'
import { writeFileAtomic } from './util/atomic-write.js'

export type FloatDtype = 'F64' | 'F32' | 'F16' | 'BF16'
export type IntDtype = 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL'
export type Dtype = FloatDtype | IntDtype

/** A tensor as read from a file. */
export interface SafeTensor {
  dtype: Dtype
  shape: number[]
  /** Values as fp32 (integer dtypes are converted too, exactly up to 2^24). */
  data: Float32Array
  /** For integer dtypes only: a copy of the stored little-endian bytes. */
  raw?: Uint8Array
}

/** A tensor to write. `dtype` defaults to the writer's `dtype` option, itself 'F32'. */
export interface TensorToWrite {
  shape: readonly number[]
  data: Float32Array
  dtype?: WritableDtype
}

export type WritableDtype = 'F32' | 'F16' | 'BF16'

export interface ParsedSafetensors {
  tensors: Map<string, SafeTensor>
  metadata: Record<string, string>
}

export interface WriteOptions {
  /** Extra `__metadata__` entries; `format: 'pt'` is always set. */
  metadata?: Record<string, string>
  /** Storage dtype for tensors that do not name one. Default 'F32'. */
  dtype?: WritableDtype
}

const DTYPE_BYTES: Record<Dtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
}

/** Whether this machine's floats are little-endian, as safetensors stores them (their bytes can be copied as they are). */
export const LITTLE_ENDIAN_HOST = endianness() === 'LE'

function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s)
}

function fail(source: string, msg: string): never {
  throw new Error(`${source}: ${msg}`)
}

// ---------------------------------------------------------------------------------------------
// fp16 / bf16 conversion

const f32Scratch = new Float32Array(1)
const u32Scratch = new Uint32Array(f32Scratch.buffer)

/** IEEE binary16 bits -> number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24 // zero and subnormals
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

/** number -> IEEE binary16 bits, round to nearest even, overflow to infinity. */
export function floatToHalf(x: number): number {
  f32Scratch[0] = x
  const bits = u32Scratch[0]!
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  const mant = bits & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0)
  // Unbiased exponent for half is exp - 127 + 15.
  const e = exp - 112
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign // underflows to (signed) zero
    const m = mant | 0x800000 // implicit leading one
    const shift = 14 - e
    let half = m >>> shift
    const rem = m & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (rem > halfway || (rem === halfway && half & 1)) half++
    return sign | half
  }
  let half = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++ // may carry into the exponent: correct
  return sign | half
}

/** fp32 -> bfloat16 bits, round to nearest even; NaN stays NaN. */
export function floatToBf16(x: number): number {
  f32Scratch[0] = x
  const bits = u32Scratch[0]!
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1)
  return (rounded >>> 16) & 0xffff
}

export function bf16ToFloat(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16
  return f32Scratch[0]!
}

// ---------------------------------------------------------------------------------------------
// Reading

/** One tensor's place in a safetensors file, checked against the header's other entries and the data's length. */
export interface SafetensorsEntry {
  name: string
  dtype: Dtype
  shape: number[]
  /** Byte offsets relative to the start of the data section. */
  begin: number
  end: number
}

/** A safetensors header, parsed and checked. `dataStart`: where the data section begins in the file. */
export interface SafetensorsHeader {
  entries: SafetensorsEntry[]
  metadata: Record<string, string>
  dataStart: number
}

/** Bytes per element of `dtype`. */
export function dtypeBytes(dtype: Dtype): number {
  return DTYPE_BYTES[dtype]
}

/**
 * The header length stored in a file's first 8 bytes, checked against the file's size. `fileBytes`: the whole
 * file's length.
 */
export function headerLength(first8: Uint8Array, fileBytes: number, source: string): number {
  if (fileBytes < 8) {
    fail(source, `file is ${fileBytes} bytes, too short to be safetensors (needs an 8-byte header length)`)
  }
  const headerLenBig = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true)
  if (headerLenBig > BigInt(fileBytes - 8)) {
    fail(
      source,
      `header length ${headerLenBig} is larger than the rest of the file (${fileBytes - 8} bytes): truncated or not a safetensors file`,
    )
  }
  return Number(headerLenBig)
}

/**
 * Parses and checks the JSON header (the `headerLength` bytes after the first 8) of a file of `fileBytes` bytes:
 * dtypes, shapes, offsets inside the data section and not overlapping. Reading the data is left to the caller.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileBytes: number, source: string): SafetensorsHeader {
  let headerText: string
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes)
  } catch {
    fail(source, 'header is not valid UTF-8')
  }
  let header: unknown
  try {
    header = JSON.parse(headerText)
  } catch (e) {
    fail(source, `header is not valid JSON (${(e as Error).message})`)
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    fail(source, 'header JSON is not an object')
  }
  const dataStart = 8 + headerBytes.byteLength
  const dataLen = fileBytes - dataStart

  const metadata: Record<string, string> = {}
  const entries: SafetensorsEntry[] = []
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(source, '"__metadata__" is not an object')
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(source, `"__metadata__.${k}" is not a string`)
        metadata[k] = v
      }
      continue
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(source, `tensor "${name}": header entry is not an object`)
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>
    if (!isDtype(dtype))
      fail(source, `tensor "${name}": unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`)
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(source, `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`)
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(source, `tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`)
    }
    const [begin, end] = offsets as [number, number]
    if (end < begin) fail(source, `tensor "${name}": data_offsets [${begin}, ${end}] end before begin`)
    const count = (shape as number[]).reduce((a, b) => a * b, 1)
    const expected = count * DTYPE_BYTES[dtype]
    if (!Number.isSafeInteger(expected)) fail(source, `tensor "${name}": shape ${JSON.stringify(shape)} is too large`)
    if (end - begin !== expected) {
      fail(
        source,
        `tensor "${name}": data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${JSON.stringify(shape)} of ${dtype} needs ${expected}`,
      )
    }
    if (end > dataLen) {
      fail(
        source,
        `tensor "${name}": data_offsets [${begin}, ${end}] run past the end of the data section (${dataLen} bytes): file truncated or offsets out of range`,
      )
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end })
  }

  const byBegin = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin)
  for (let i = 1; i < byBegin.length; i++) {
    const prev = byBegin[i - 1]!
    const cur = byBegin[i]!
    if (cur.begin < prev.end) {
      fail(
        source,
        `tensors "${prev.name}" [${prev.begin}, ${prev.end}] and "${cur.name}" [${cur.begin}, ${cur.end}] have overlapping data_offsets`,
      )
    }
  }
  return { entries, metadata, dataStart }
}

/** Parses a safetensors file already in memory. `source` names the file in error messages. */
export function parseSafetensors(buf: Uint8Array, source = '<buffer>'): ParsedSafetensors {
  const headerLen = headerLength(buf.subarray(0, 8), buf.byteLength, source)
  const { entries, metadata, dataStart } = parseSafetensorsHeader(buf.subarray(8, 8 + headerLen), buf.byteLength, source)
  const tensors = new Map<string, SafeTensor>()
  for (const e of entries) {
    const bytes = buf.subarray(dataStart + e.begin, dataStart + e.end)
    tensors.set(e.name, decodeTensor(e.dtype, e.shape, bytes))
  }
  return { tensors, metadata }
}

/**
 * Converts `bytes` (whole elements of `dtype`, little-endian) into `out` as fp32, from out[0] on; integers exactly
 * up to 2^24. `out` must hold bytes.byteLength / dtypeBytes(dtype) elements.
 */
export function decodeInto(dtype: Dtype, bytes: Uint8Array, out: Float32Array): void {
  const n = bytes.byteLength / DTYPE_BYTES[dtype]
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  switch (dtype) {
    case 'F32':
      if (LITTLE_ENDIAN_HOST) new Uint8Array(out.buffer, out.byteOffset, 4 * n).set(bytes)
      else for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true)
      return
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true)
      return
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true))
      return
    case 'BF16':
      if (LITTLE_ENDIAN_HOST && bytes.byteOffset % 2 === 0) {
        const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n)
        const dst = new Uint32Array(out.buffer, out.byteOffset, n)
        for (let i = 0; i < n; i++) dst[i] = src[i]! << 16
      } else {
        for (let i = 0; i < n; i++) out[i] = bf16ToFloat(dv.getUint16(2 * i, true))
      }
      return
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(8 * i, true))
      return
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true)
      return
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true)
      return
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i)
      return
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = bytes[i]!
      return
  }
}

function decodeTensor(dtype: Dtype, shape: number[], bytes: Uint8Array): SafeTensor {
  // Copy so the result owns aligned memory independent of the file buffer.
  const copy = new Uint8Array(bytes.byteLength)
  copy.set(bytes)
  if (dtype === 'F32' && LITTLE_ENDIAN_HOST) return { dtype, shape, data: new Float32Array(copy.buffer) }
  const out = new Float32Array(bytes.byteLength / DTYPE_BYTES[dtype])
  decodeInto(dtype, copy, out)
  return dtype === 'F64' || dtype === 'F32' || dtype === 'F16' || dtype === 'BF16'
    ? { dtype, shape, data: out }
    : { dtype, shape, data: out, raw: copy }
}

/** Reads a whole safetensors file. Errors name the file. */
export async function readSafetensors(path: string): Promise<Map<string, SafeTensor>> {
  return (await readSafetensorsWithMetadata(path)).tensors
}

export async function readSafetensorsWithMetadata(path: string): Promise<ParsedSafetensors> {
  let buf: Buffer
  try {
    buf = await fsp.readFile(path)
  } catch (e) {
    throw new Error(`${path}: cannot read safetensors file (${(e as Error).message})`)
  }
  return parseSafetensors(buf, path)
}

// ---------------------------------------------------------------------------------------------
// Writing

type TensorInput = Map<string, TensorToWrite> | Record<string, TensorToWrite>

/** One tensor's place in a file being written. */
export interface PlannedTensor {
  name: string
  shape: readonly number[]
  dtype: WritableDtype
  /** Elements. */
  count: number
  /** Byte offset from the start of the file. */
  at: number
}

/** What a writer puts into a file: the first 8 bytes and the header, then each tensor's bytes at its place. */
export interface SafetensorsPlan {
  /** The length prefix and the JSON header, padded to a multiple of 8 bytes. */
  head: Uint8Array
  tensors: PlannedTensor[]
  /** Bytes of the whole file. */
  bytes: number
}

/**
 * Lays out a file of these tensors (sorted by name, contiguous offsets) after checking names, shapes and
 * dtypes. `count` of each tensor: its number of elements as the caller holds them, checked against its shape.
 */
export function planSafetensors(
  tensors: [string, { shape: readonly number[]; dtype?: WritableDtype; count: number }][],
  options: WriteOptions = {},
  source = '<buffer>',
): SafetensorsPlan {
  const defaultDtype = options.dtype ?? 'F32'
  const list = [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

  const header: Record<string, unknown> = {}
  const metadata: Record<string, string> = {}
  for (const [k, v] of Object.entries(options.metadata ?? {})) {
    if (typeof v !== 'string') fail(source, `metadata "${k}" must be a string`)
    metadata[k] = v
  }
  metadata.format = 'pt'
  header.__metadata__ = metadata

  let offset = 0
  const planned: PlannedTensor[] = []
  for (const [name, t] of list) {
    if (name === '' || name === '__metadata__') fail(source, `invalid tensor name ${JSON.stringify(name)}`)
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(source, `tensor "${name}": shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`)
    }
    const count = t.shape.reduce((a, b) => a * b, 1)
    if (count !== t.count) {
      fail(source, `tensor "${name}": shape ${JSON.stringify(t.shape)} holds ${count} values but data has ${t.count}`)
    }
    const dtype = t.dtype ?? defaultDtype
    if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16')
      fail(source, `tensor "${name}": cannot write dtype ${JSON.stringify(dtype)}`)
    const size = count * DTYPE_BYTES[dtype]
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + size] }
    planned.push({ name, shape: t.shape, dtype, count, at: offset })
    offset += size
  }

  let json = JSON.stringify(header)
  const jsonBytes = Buffer.byteLength(json, 'utf8')
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8)
  const headerBytes = new TextEncoder().encode(json)
  const dataStart = 8 + headerBytes.byteLength
  const head = new Uint8Array(dataStart)
  new DataView(head.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true)
  head.set(headerBytes, 8)
  for (const p of planned) p.at += dataStart
  return { head, tensors: planned, bytes: dataStart + offset }
}

/** Writes `values` as `dtype` into `out` from byte `at` on (little-endian). */
export function encodeInto(dtype: WritableDtype, values: Float32Array, out: Uint8Array, at: number): void {
  const n = values.length
  if (dtype === 'F32' && LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), at)
    return
  }
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength)
  if (dtype === 'F32') for (let i = 0; i < n; i++) dv.setFloat32(at + 4 * i, values[i]!, true)
  else if (dtype === 'BF16') for (let i = 0; i < n; i++) dv.setUint16(at + 2 * i, floatToBf16(values[i]!), true)
  else for (let i = 0; i < n; i++) dv.setUint16(at + 2 * i, floatToHalf(values[i]!), true)
}

/** Serializes tensors (sorted by name, contiguous offsets) into one safetensors buffer. */
export function serializeSafetensors(tensors: TensorInput, options: WriteOptions = {}, source = '<buffer>'): Uint8Array {
  const list = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))]
  for (const [name, t] of list) {
    if (!t || !(t.data instanceof Float32Array)) fail(source, `tensor "${name}": data must be a Float32Array`)
  }
  const data = new Map(list.map(([name, t]) => [name, t.data]))
  const plan = planSafetensors(
    list.map(([name, t]) => [name, { shape: t.shape, dtype: t.dtype, count: t.data.length }]),
    options,
    source,
  )
  const out = new Uint8Array(plan.bytes)
  out.set(plan.head)
  for (const p of plan.tensors) encodeInto(p.dtype, data.get(p.name)!, out, p.at)
  return out
}

/**
 * Writes tensors to `path` atomically: the bytes go to a temporary file in the same directory,
 * which is fsynced and then renamed over `path`, so a crash never leaves a half-written checkpoint.
 */
export async function writeSafetensors(path: string, tensors: TensorInput, options: WriteOptions = {}): Promise<void> {
  const bytes = serializeSafetensors(tensors, options, path)
  try {
    await writeFileAtomic(path, bytes)
  } catch (e) {
    throw new Error(`${path}: cannot write safetensors file (${(e as Error).message})`)
  }
}
