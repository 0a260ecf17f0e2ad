// The protobuf wire format read back field by field (https://protobuf.dev/programming-guides/encoding/), written
// independently of lib/export/protobuf.ts's encoder so that tests hold files to the .proto field numbers, not to
// our writer: ONNX models (onnx-read.ts) and TensorBoard event files.

/** One field: its number and its value by wire type (varint, length-delimited bytes, fixed 32 or 64 bits). */
export interface Field {
  field: number
  varint?: bigint
  bytes?: Uint8Array
  /** Wire type 5: the four bytes (a float or fixed32). */
  fixed32?: Uint8Array
  /** Wire type 1: the eight bytes (a double or fixed64). */
  fixed64?: Uint8Array
}

export function* protoFields(b: Uint8Array, what = 'protobuf'): Generator<Field> {
  let i = 0
  const varint = () => {
    let v = 0n,
      shift = 0n
    for (;;) {
      if (i >= b.length) throw new Error(`${what}: truncated varint`)
      const x = b[i++]
      v |= BigInt(x & 127) << shift
      shift += 7n
      if (x < 128) return v
    }
  }
  const take = (field: number, n: number) => {
    if (i + n > b.length) throw new Error(`${what}: field ${field} runs past the end`)
    return b.subarray(i, (i += n))
  }
  while (i < b.length) {
    const tag = Number(varint())
    const field = tag >> 3,
      wire = tag & 7
    if (wire === 0) yield { field, varint: varint() }
    else if (wire === 2) yield { field, bytes: take(field, Number(varint())) }
    else if (wire === 5) yield { field, fixed32: take(field, 4) }
    else if (wire === 1) yield { field, fixed64: take(field, 8) }
    else throw new Error(`${what}: wire type ${wire}`)
  }
}

/** A fixed32 field's float, a fixed64 field's double (little-endian). */
export const floatOf = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true)
export const doubleOf = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true)
