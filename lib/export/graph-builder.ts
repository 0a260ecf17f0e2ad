// Collects ONNX nodes and initializers with generated value names, so that a model's graph reads as
// a sequence of op calls (`const y = g.op('MatMul', [x, w])`) rather than a list of name strings.
import {
  DataType,
  float32Bytes,
  floatTensor,
  int64Tensor,
  type AttributeValue,
  type DataTypeCode,
  type GraphSpec,
  type NodeSpec,
  type TensorValue,
  type ValueInfo,
} from './onnx-model.js'
import { encodeInto } from '../safetensors.js'
import type { DeferredBytes } from './protobuf.js'

/**
 * How float weights are stored: fp32; fp16 with a Cast back to fp32 before use (half the file); q8: the
 * linear layers' weights and the word embeddings as int8 with fp32 scales, the products in integers with
 * activations quantized at run time (quantized-ops.ts; a quarter of the file), the other weights fp32.
 */
export type WeightStorage = 'fp32' | 'fp16' | 'q8'

export class GraphBuilder {
  private readonly nodes: NodeSpec[] = []
  private readonly initializers: TensorValue[] = []
  private readonly names = new Set<string>()
  private readonly constants = new Map<string, string>()
  private counter = 0
  private readonly valueBuffer = new ReusedBuffer(Float32Array)
  private readonly halfBuffer = new ReusedBuffer(Uint16Array)

  constructor(readonly storage: WeightStorage = 'fp32') {}

  /** Adds one node; returns the name of its output (every op used here has one). */
  op(opType: string, inputs: readonly string[], attributes?: Record<string, AttributeValue>): string {
    const name = `${opType}_${this.counter++}`
    this.nodes.push({ opType, inputs, outputs: [this.unique(name)], name, ...(attributes ? { attributes } : {}) })
    return name
  }

  /** Adds one node with `count` outputs; returns their names. */
  opOutputs(opType: string, inputs: readonly string[], count: number, attributes?: Record<string, AttributeValue>): string[] {
    const name = `${opType}_${this.counter++}`
    const outputs = Array.from({ length: count }, (_, k) => this.unique(`${name}_${k}`))
    this.nodes.push({ opType, inputs, outputs, name, ...(attributes ? { attributes } : {}) })
    return outputs
  }

  /** An initializer stored as given (its bytes made when the file is written); returns its name. */
  initializer(name: string, dims: readonly number[], dataType: DataTypeCode, raw: DeferredBytes): string {
    this.initializers.push({ name: this.unique(name), dims, dataType, raw })
    return name
  }

  /** Copies `input` to the graph output `name` (graph outputs need fixed names). */
  output(name: string, input: string): string {
    this.unique(name)
    this.nodes.push({ opType: 'Identity', inputs: [input], outputs: [name], name: `${name}_out` })
    return name
  }

  /**
   * A float weight under its checkpoint name; with fp16 storage, the name of its Cast to fp32 (q8 stores the
   * weights given here in fp32: quantized-ops.ts quantizes the others). `fill(into)`
   * puts the values into `into` when the file is written, not now, and into one reused buffer: only one
   * weight's values are in memory at a time (the bytes a deferred part makes are written before the next).
   */
  weight(name: string, dims: readonly number[], fill: (into: Float32Array) => void): string {
    const count = dims.reduce((a, b) => a * b, 1)
    const values = () => {
      const into = this.valueBuffer.take(count)
      fill(into)
      return into
    }
    if (this.storage !== 'fp16') {
      this.initializers.push({
        name: this.unique(name),
        dims,
        dataType: DataType.FLOAT,
        raw: { byteLength: 4 * count, bytes: () => float32Bytes(values()) },
      })
      return name
    }
    const raw = { byteLength: 2 * count, bytes: () => halfBytes(values(), this.halfBuffer.take(count)) }
    this.initializers.push({ name: this.unique(name), dims, dataType: DataType.FLOAT16, raw })
    return this.op('Cast', [name], { to: DataType.FLOAT })
  }

  /** A fp32 constant (a scalar when dims is []), shared between uses. */
  floats(values: readonly number[], dims: readonly number[] = []): string {
    return this.constant(`f:${dims.join('x')}:${values.join(',')}`, (name) => floatTensor(name, dims, Float32Array.from(values)))
  }

  /** An int64 constant (a scalar when dims is []), shared between uses. */
  ints(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.constant(`i:${dims.join('x')}:${values.join(',')}`, (name) => int64Tensor(name, dims, values))
  }

  graph(name: string, inputs: readonly ValueInfo[], outputs: readonly ValueInfo[]): GraphSpec {
    for (const i of inputs) this.unique(i.name)
    return { name, nodes: this.nodes, initializers: this.initializers, inputs, outputs }
  }

  private constant(key: string, make: (name: string) => TensorValue): string {
    let name = this.constants.get(key)
    if (!name) {
      name = this.unique(`const_${this.constants.size}`)
      this.constants.set(key, name)
      this.initializers.push(make(name))
    }
    return name
  }

  private unique(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX graph: the value name ${name} is used twice`)
    this.names.add(name)
    return name
  }
}

/** Little-endian fp16 bytes of `data` (round to nearest even, as safetensors writes F16), in `into`. */
function halfBytes(data: Float32Array, into: Uint16Array): Uint8Array {
  const bytes = new Uint8Array(into.buffer, into.byteOffset, into.byteLength)
  encodeInto('F16', data, bytes, 0)
  return bytes
}

/** One typed array, grown when asked for more elements than it holds, handed out as a subarray of exactly that many. */
export class ReusedBuffer<A extends Float32Array | Uint16Array | Int8Array> {
  private array: A

  constructor(private readonly make: new (n: number) => A) {
    this.array = new make(0)
  }

  take(n: number): A {
    if (this.array.length < n) this.array = new this.make(n)
    return this.array.subarray(0, n) as A
  }
}
