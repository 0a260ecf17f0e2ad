// The ONNX messages an exported encoder needs, encoded with their field numbers from onnx.proto
// (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto and the type and
// shape messages inside it). Plain objects in, protobuf bytes out; nothing here knows about BERT.
import { LITTLE_ENDIAN_HOST } from '../safetensors.js'
import { ProtoWriter, type DeferredBytes } from './protobuf.js'

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT8: 3, INT64: 7, BOOL: 9, FLOAT16: 10 } as const
export type DataTypeCode = (typeof DataType)[keyof typeof DataType]

export interface TensorValue {
  name: string
  dims: readonly number[]
  dataType: DataTypeCode
  /** Little-endian element bytes (TensorProto.raw_data), or bytes made when the file is written. */
  raw: Uint8Array | DeferredBytes
}

export type AttributeValue = number | string | readonly number[] | { float: number }

export interface NodeSpec {
  opType: string
  inputs: readonly string[]
  outputs: readonly string[]
  name?: string
  /** int (number), ints (number[]), string, or float ({ float }). */
  attributes?: Record<string, AttributeValue>
}

/** A tensor value's declared type: element type and dimensions, each a size or a symbolic name. */
export interface ValueInfo {
  name: string
  elemType: DataTypeCode
  dims: readonly (number | string)[]
}

export interface GraphSpec {
  name: string
  nodes: readonly NodeSpec[]
  initializers: readonly TensorValue[]
  inputs: readonly ValueInfo[]
  outputs: readonly ValueInfo[]
}

export interface ModelSpec {
  graph: GraphSpec
  irVersion: number
  opsetVersion: number
  producerName: string
  producerVersion: string
  docString?: string
  metadata?: Record<string, string>
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1
const ATTR_INT = 2
const ATTR_STRING = 3
const ATTR_INTS = 7

/** A fp32 tensor from a Float32Array (stored little-endian whatever the host; on LE hosts a view of `data`, not a copy). */
export function floatTensor(name: string, dims: readonly number[], data: Float32Array): TensorValue {
  return { name, dims, dataType: DataType.FLOAT, raw: float32Bytes(data) }
}

/** Little-endian fp32 bytes of `data` (on LE hosts a view, not a copy). */
export function float32Bytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  const raw = new Uint8Array(data.length * 4)
  const view = new DataView(raw.buffer)
  for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i], true)
  return raw
}

export function int64Tensor(name: string, dims: readonly number[], data: readonly number[]): TensorValue {
  const raw = new Uint8Array(data.length * 8)
  const view = new DataView(raw.buffer)
  for (let i = 0; i < data.length; i++) view.setBigInt64(8 * i, BigInt(data[i]), true)
  return { name, dims, dataType: DataType.INT64, raw }
}

function encodeTensor(t: TensorValue): ProtoWriter {
  const w = new ProtoWriter()
  w.packedInts(1, t.dims) // dims
  w.int(2, t.dataType) // data_type
  w.string(8, t.name) // name
  w.bytes(9, t.raw) // raw_data
  return w
}

function encodeAttribute(name: string, value: AttributeValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name) // name
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`ONNX attribute ${name}: ${value} is not an integer (use { float })`)
    w.int(20, ATTR_INT).int(3, value) // type, i
  } else if (typeof value === 'string') {
    w.int(20, ATTR_STRING).string(4, value) // type, s
  } else if (Array.isArray(value)) {
    w.int(20, ATTR_INTS)
    for (const v of value as readonly number[]) w.int(8, v) // ints (unpacked, as onnx writes them)
  } else {
    w.int(20, ATTR_FLOAT).float(2, (value as { float: number }).float) // type, f
  }
  return w
}

function encodeNode(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter()
  for (const i of n.inputs) w.string(1, i)
  for (const o of n.outputs) w.string(2, o)
  if (n.name) w.string(3, n.name)
  w.string(4, n.opType)
  for (const [k, v] of Object.entries(n.attributes ?? {})) w.message(5, encodeAttribute(k, v))
  return w
}

function encodeValueInfo(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter()
  for (const d of v.dims) {
    const dim = typeof d === 'number' ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d) // dim_value | dim_param
    shape.message(1, dim)
  }
  const tensorType = new ProtoWriter().int(1, v.elemType).message(2, shape) // elem_type, shape
  const type = new ProtoWriter().message(1, tensorType) // TypeProto.tensor_type
  return new ProtoWriter().string(1, v.name).message(2, type)
}

function encodeGraph(g: GraphSpec): ProtoWriter {
  const w = new ProtoWriter()
  for (const n of g.nodes) w.message(1, encodeNode(n))
  w.string(2, g.name)
  for (const t of g.initializers) w.message(5, encodeTensor(t))
  for (const i of g.inputs) w.message(11, encodeValueInfo(i))
  for (const o of g.outputs) w.message(12, encodeValueInfo(o))
  return w
}

/** The ModelProto bytes of an .onnx file. */
export function encodeModel(m: ModelSpec): Uint8Array {
  return modelWriter(m).finish()
}

/** The ModelProto as a writer whose parts() stream to a file (writeProtoFile) with deferred weights made one at a time. */
export function modelWriter(m: ModelSpec): ProtoWriter {
  const w = new ProtoWriter()
  w.int(1, m.irVersion) // ir_version
  w.string(2, m.producerName)
  w.string(3, m.producerVersion)
  if (m.docString) w.string(6, m.docString)
  w.message(7, encodeGraph(m.graph))
  w.message(8, new ProtoWriter().string(1, '').int(2, m.opsetVersion)) // opset_import: the default domain
  for (const [key, value] of Object.entries(m.metadata ?? {})) w.message(14, new ProtoWriter().string(1, key).string(2, value))
  return w
}
