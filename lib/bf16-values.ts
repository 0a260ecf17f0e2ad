// Values kept in bfloat16, two to a float32 element: an activation that only bf16 math reads again (the MLP's
// pre-activation in bf16 training), in half the memory of a Tensor of its shape.
import type { Tensor } from './tensor.js'

/**
 * The values of `shape` kept as bfloat16 in `storage` (ceil(numel / 2) floats, on either device): element i in bytes
 * [2i, 2i + 2) of the storage, little-endian, rounded to nearest even by the op that writes it (linearForward's
 * output, read as linearBackward's geluInput or as attention's packed q | k | v; attention's ctx, read by the linear
 * layer after it; linearBackward's dinp, read as attentionBackward's dctx).
 */
export class Bf16Values {
  readonly numel: number

  constructor(
    readonly storage: Tensor,
    readonly shape: number[],
  ) {
    this.numel = shape.reduce((a, b) => a * b, 1)
    if (storage.numel !== Math.ceil(this.numel / 2))
      throw new RangeError(
        `Bf16Values: storage must hold ceil(${this.numel} / 2) = ${Math.ceil(this.numel / 2)} floats for shape ` +
          `[${shape.join(', ')}] but holds ${storage.numel}`,
      )
  }

  /** The same values (the same storage) as `shape`, which holds as many elements. */
  reshape(shape: number[]): Bf16Values {
    const n = shape.reduce((a, b) => a * b, 1)
    if (n !== this.numel) throw new RangeError(`Bf16Values.reshape: [${shape.join(', ')}] does not hold ${this.numel} elements`)
    return new Bf16Values(this.storage, shape)
  }

  /** The values as float32 (exact: every bfloat16 is a float32). */
  toFloat32Array(): Float32Array {
    const halves = new Uint16Array(this.storage.toFloat32Array().buffer, 0, this.numel)
    const out = new Float32Array(this.numel)
    const bits = new Uint32Array(out.buffer)
    for (let i = 0; i < this.numel; i++) bits[i] = halves[i] << 16
    return out
  }
}
