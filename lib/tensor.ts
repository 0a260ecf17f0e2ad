// Tensor: a float32 array with a shape, on the CPU or a CUDA device, backed by native memory.
import { addon, type DeviceName, type NativeTensor } from './native.js'

export type Device = DeviceName

const handles = new WeakMap<Tensor, NativeTensor>()

export class Tensor {
  private constructor(handle: NativeTensor) {
    handles.set(this, handle)
  }

  /** Copies `data` into a new tensor of the given shape on `device`. */
  static from(data: Float32Array, shape: number[], device: Device = 'cpu'): Tensor {
    if (!(data instanceof Float32Array)) {
      throw new TypeError(`Expected data to be a Float32Array but received ${describe(data)}`)
    }
    const t = Tensor.zeros(shape, device)
    const numel = shape.reduce((a, b) => a * b, 1)
    if (data.length !== numel) {
      t.dispose()
      throw new RangeError(`Expected data to hold ${numel} elements for shape [${shape.join(', ')}] but it holds ${data.length}`)
    }
    handles.get(t)!.copyFrom(data)
    return t
  }

  /** A new zero-filled tensor. */
  static zeros(shape: number[], device: Device = 'cpu'): Tensor {
    return new Tensor(new addon.NativeTensor(shape, device))
  }

  /** @internal Wraps a tensor the addon created. */
  static fromNative(handle: NativeTensor): Tensor {
    return new Tensor(handle)
  }

  get shape(): number[] {
    return handles.get(this)!.shape
  }

  get device(): Device {
    return handles.get(this)!.device
  }

  get disposed(): boolean {
    return handles.get(this)!.disposed
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1)
  }

  /** The values as a new Float32Array, or copied into `out` (exactly numel elements) and returned. */
  toFloat32Array(out?: Float32Array): Float32Array {
    return handles.get(this)!.toFloat32Array(out)
  }

  /** A copy on `device` (a new tensor even when the device is the same). */
  to(device: Device): Tensor {
    return new Tensor(handles.get(this)!.to(device))
  }

  /** A tensor sharing this one's memory: `shape` elements starting `offset` elements in. */
  view(offset: number, shape: number[]): Tensor {
    return new Tensor(handles.get(this)!.view(offset, shape))
  }

  /** Sets every element to `value`. */
  fill(value: number): this {
    handles.get(this)!.fill(value)
    return this
  }

  /** Copies host data or another tensor (any device) into this tensor; element counts must match. */
  copyFrom(data: Float32Array | Tensor): this {
    if (data instanceof Tensor) handles.get(this)!.copyTensor(nativeOf(data, 'src'))
    else if (data instanceof Float32Array) handles.get(this)!.copyFrom(data)
    else throw new TypeError(`Expected data to be a Float32Array or a Tensor but received ${describe(data)}`)
    return this
  }

  /**
   * @internal Keeps a bf16 copy of this CUDA tensor (which must own its memory) for the bf16 matrix products,
   * which then read their weights from it instead of rounding them at every op: a model's parameters
   * (kernels/bf16_mirror.cuh). AdamW updates it; any other write makes the next product refresh it. Freed with
   * the tensor. True once attached; false on the CPU, whose products round as they pack their operands.
   */
  attachBf16Mirror(): boolean {
    return handles.get(this)!.attachBf16Mirror()
  }

  /** Frees the memory now; the finalizer would otherwise free it when the tensor is collected. */
  dispose(): void {
    handles.get(this)!.dispose()
  }

  toString(): string {
    return `Tensor([${this.shape.join(', ')}], ${this.device}${this.disposed ? ', disposed' : ''})`
  }
}

/** @internal The native handle of a tensor, after checking that `value` is a Tensor. */
export function nativeOf(value: unknown, name: string): NativeTensor {
  const h = value instanceof Tensor ? handles.get(value) : undefined
  if (!h) throw new TypeError(`Expected ${name} to be a Tensor but received ${describe(value)}`)
  return h
}

export function describe(v: unknown): string {
  if (v === null) return 'null'
  if (v instanceof Tensor) return v.toString()
  if (Array.isArray(v)) return 'an array'
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`
  if (typeof v === 'string') return `string ${JSON.stringify(v.slice(0, 40))}`
  return `${typeof v} ${String(v)}`
}
