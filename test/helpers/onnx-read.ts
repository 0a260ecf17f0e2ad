// Reads back what tests need of an .onnx file, straight from the protobuf wire format (written independently
// of lib/export's encoder, so that a test holds the file to onnx.proto's field numbers, not to our writer):
// ModelProto.graph (7) -> GraphProto.node (1: NodeProto input 1, output 2, op_type 4) and initializer (5:
// TensorProto dims 1, data_type 2, name 8, raw_data 9).

import { protoFields } from './proto-read.js'

export interface ReadNode {
  opType: string
  inputs: string[]
  outputs: string[]
}

export interface ReadInitializer {
  name: string
  dims: number[]
  dataType: number
  raw: Uint8Array
}

export interface ReadGraph {
  nodes: ReadNode[]
  initializers: Map<string, ReadInitializer>
}

const fields = (b: Uint8Array) => protoFields(b, 'onnx-read')

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8')

/** Packed varints (TensorProto.dims as written) or a single varint field. */
function varints(b: Uint8Array): number[] {
  const out: number[] = []
  let i = 0
  while (i < b.length) {
    let v = 0n,
      shift = 0n
    for (;;) {
      const x = b[i++]
      v |= BigInt(x & 127) << shift
      shift += 7n
      if (x < 128) break
    }
    out.push(Number(BigInt.asIntN(64, v)))
  }
  return out
}

export function readOnnxGraph(file: Uint8Array): ReadGraph {
  const nodes: ReadNode[] = []
  const initializers = new Map<string, ReadInitializer>()
  for (const m of fields(file)) {
    if (m.field !== 7 || !m.bytes) continue
    for (const g of fields(m.bytes)) {
      if (g.field === 1 && g.bytes) {
        const n: ReadNode = { opType: '', inputs: [], outputs: [] }
        for (const f of fields(g.bytes)) {
          if (f.field === 1) n.inputs.push(text(f.bytes!))
          else if (f.field === 2) n.outputs.push(text(f.bytes!))
          else if (f.field === 4) n.opType = text(f.bytes!)
        }
        nodes.push(n)
      } else if (g.field === 5 && g.bytes) {
        const t: ReadInitializer = { name: '', dims: [], dataType: 0, raw: new Uint8Array(0) }
        for (const f of fields(g.bytes)) {
          if (f.field === 1) t.dims.push(...(f.bytes ? varints(f.bytes) : [Number(f.varint)]))
          else if (f.field === 2) t.dataType = Number(f.varint)
          else if (f.field === 8) t.name = text(f.bytes!)
          else if (f.field === 9) t.raw = f.bytes!
        }
        initializers.set(t.name, t)
      }
    }
  }
  return { nodes, initializers }
}

/** How many nodes of each op type. */
export function opCounts(g: ReadGraph): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const n of g.nodes) counts[n.opType] = (counts[n.opType] ?? 0) + 1
  return counts
}
