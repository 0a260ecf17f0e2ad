// Collects ONNX nodes and initializers with generated value names, so that a model's graph reads as
// a sequence of op calls (`const y = g.op('MatMul', [x, w])`) rather than a list of name strings.
import {
  DataType,
  floatTensor,
  int64Tensor,
  type AttributeValue,
  type GraphSpec,
  type NodeSpec,
  type TensorValue,
  type ValueInfo,
} from './onnx-model.js'
import { floatToHalf } from '../safetensors.js'

/** How float weights are stored: fp32, or fp16 with a Cast back to fp32 before use (half the file). */
export type WeightStorage = 'fp32' | 'fp16'

export class GraphBuilder {
  private readonly nodes: NodeSpec[] = []
  private readonly initializers: TensorValue[] = []
  private readonly names = new Set<string>()
  private readonly constants = new Map<string, string>()
  private counter = 0

  constructor(private readonly storage: WeightStorage = 'fp32') {}

  /** Adds one node; returns the name of its output (every op used here has one). */
  op(opType: string, inputs: readonly string[], attributes?: Record<string, AttributeValue>): string {
    const name = `${opType}_${this.counter++}`
    this.nodes.push({ opType, inputs, outputs: [this.unique(name)], name, ...(attributes ? { attributes } : {}) })
    return name
  }

  /** Copies `input` to the graph output `name` (graph outputs need fixed names). */
  output(name: string, input: string): string {
    this.unique(name)
    this.nodes.push({ opType: 'Identity', inputs: [input], outputs: [name], name: `${name}_out` })
    return name
  }

  /** A float weight under its checkpoint name; with fp16 storage, the name of its Cast to fp32. */
  weight(name: string, dims: readonly number[], data: Float32Array): string {
    if (this.storage === 'fp32') {
      this.initializers.push(floatTensor(this.unique(name), dims, data))
      return name
    }
    const raw = new Uint8Array(data.length * 2)
    const view = new DataView(raw.buffer)
    for (let i = 0; i < data.length; i++) view.setUint16(2 * i, floatToHalf(data[i]), true)
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
