// A protobuf wire-format encoder, just enough for ONNX files (https://protobuf.dev/programming-guides/encoding/):
// every field is a tag (field number << 3 | wire type) followed by a varint (wire type 0), eight
// little-endian bytes (1), a length-prefixed byte string (2: strings, bytes, packed repeated scalars
// and nested messages) or four little-endian bytes (5). A message is its fields back to back, so
// nesting one is writing its bytes as a length-delimited field.
//
// Fields are collected as parts, a nested writer's parts are taken over as they are, and either finish()
// joins them once or parts() hands them to a writer that streams them to a file. A part may be deferred:
// its length is known up front (a length-delimited field needs it before its bytes) and its bytes are made
// only when written, so a 400 MB model's weights are fetched one tensor at a time, never all at once.

/**
 * Bytes of a known length made only when needed: bytes() must return exactly byteLength bytes, which may
 * live in a buffer the next deferred part reuses (finish() and writeProtoFile use them before the next).
 */
export interface DeferredBytes {
  readonly byteLength: number
  bytes(): Uint8Array
}

/** A piece of an encoded message: bytes, or bytes made when written. */
export type Part = Uint8Array | DeferredBytes

/** The bytes of a part (a deferred part made now, its length checked). */
export function partBytes(part: Part): Uint8Array {
  if (part instanceof Uint8Array) return part
  const b = part.bytes()
  if (b.byteLength !== part.byteLength)
    throw new Error(`protobuf: a deferred field made ${b.byteLength} bytes where ${part.byteLength} were announced`)
  return b
}

const VARINT = 0
const FIXED64 = 1
const LENGTH_DELIMITED = 2
const FIXED32 = 5

export class ProtoWriter {
  private readonly chunks: Part[] = []
  private scratch: number[] = []
  private size = 0

  /** Bytes written so far. */
  get byteLength(): number {
    return this.size + this.scratch.length
  }

  /** An int32/int64/enum/bool field (negative numbers as ten-byte two's-complement varints, as protobuf does). */
  int(field: number, value: number | bigint): this {
    this.tag(field, VARINT)
    this.varint(value)
    return this
  }

  /** A float field (wire type 5). */
  float(field: number, value: number): this {
    this.tag(field, FIXED32)
    const b = new Uint8Array(4)
    new DataView(b.buffer).setFloat32(0, value, true)
    this.raw(b)
    return this
  }

  /** A double field (wire type 1). */
  double(field: number, value: number): this {
    this.tag(field, FIXED64)
    const b = new Uint8Array(8)
    new DataView(b.buffer).setFloat64(0, value, true)
    this.raw(b)
    return this
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value))
  }

  /** A bytes field; a DeferredBytes value is made only when the message is joined or written. */
  bytes(field: number, value: Uint8Array | DeferredBytes): this {
    this.tag(field, LENGTH_DELIMITED)
    this.varint(value.byteLength)
    this.raw(value)
    return this
  }

  /** A nested message as a length-delimited field (a writer's chunks are moved here, not copied). */
  message(field: number, value: ProtoWriter | Uint8Array): this {
    if (value instanceof Uint8Array) return this.bytes(field, value)
    value.flushScratch()
    this.tag(field, LENGTH_DELIMITED)
    this.varint(value.size)
    for (const c of value.chunks) this.raw(c)
    value.chunks.length = 0
    value.size = 0
    return this
  }

  /** A packed repeated int64 field: the varints back to back in one length-delimited field. */
  packedInts(field: number, values: readonly (number | bigint)[]): this {
    const inner = new ProtoWriter()
    for (const v of values) inner.varint(v)
    return this.bytes(field, inner.finish())
  }

  /** The encoded message as parts in order (deferred parts not made yet), for a writer that streams them. */
  parts(): readonly Part[] {
    this.flushScratch()
    return this.chunks
  }

  /** The encoded message in one array (deferred parts made now). */
  finish(): Uint8Array {
    this.flushScratch()
    if (this.chunks.length === 1) return partBytes(this.chunks[0])
    const out = new Uint8Array(this.size)
    let at = 0
    for (const c of this.chunks) {
      out.set(partBytes(c), at)
      at += c.byteLength
    }
    this.chunks.length = 0
    this.chunks.push(out)
    return out
  }

  private tag(field: number, wireType: number): void {
    if (!Number.isSafeInteger(field) || field < 1 || field > 0x1fffffff) throw new RangeError(`protobuf: invalid field number ${field}`)
    this.varint(field * 8 + wireType)
  }

  /** Seven bits per byte, least significant first, the high bit set on every byte but the last. */
  private varint(value: number | bigint): void {
    let v = BigInt(value)
    if (v < 0n) v = BigInt.asUintN(64, v)
    if (v >= 1n << 64n) throw new RangeError(`protobuf: ${value} does not fit in 64 bits`)
    while (v >= 0x80n) {
      this.scratch.push(Number(v & 0x7fn) | 0x80)
      v >>= 7n
    }
    this.scratch.push(Number(v))
  }

  private raw(b: Part): void {
    this.flushScratch()
    this.chunks.push(b)
    this.size += b.byteLength
  }

  private flushScratch(): void {
    if (!this.scratch.length) return
    const b = Uint8Array.from(this.scratch)
    this.scratch = []
    this.chunks.push(b)
    this.size += b.byteLength
  }
}
