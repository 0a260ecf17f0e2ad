// The protobuf wire encoder against the byte sequences of protobuf's encoding guide
// (https://protobuf.dev/programming-guides/encoding/), and an ONNX attribute decoded back by hand.
import t from 'tap'
import { ProtoWriter } from '../lib/export/protobuf.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

t.test('varints, strings, packed repeated fields and nested messages as the encoding guide writes them', async (t) => {
  t.equal(hex(new ProtoWriter().int(1, 150).finish()), '089601', 'field 1 = 150')
  t.equal(hex(new ProtoWriter().string(2, 'testing').finish()), '120774657374696e67', 'field 2 = "testing"')
  t.equal(hex(new ProtoWriter().packedInts(4, [3, 270, 86942]).finish()), '2206038e029ea705', 'packed field 4 = [3, 270, 86942]')
  t.equal(hex(new ProtoWriter().message(3, new ProtoWriter().int(1, 150)).finish()), '1a03089601', 'field 3 = { a: 150 }')
  t.equal(hex(new ProtoWriter().int(1, -1).finish()), '08ffffffffffffffffff01', 'int64 -1: ten bytes')
  t.equal(hex(new ProtoWriter().int(1, 2n ** 63n - 1n).finish()), '08ffffffffffffffff7f', 'int64 max: nine bytes')
  t.equal(hex(new ProtoWriter().float(2, 1.5).finish()), '150000c03f', 'float 1.5: wire type 5, little-endian')
  t.equal(hex(new ProtoWriter().int(20, 1).finish()), 'a00101', 'field 20: a two-byte tag')
  t.equal(hex(new ProtoWriter().bytes(5, new Uint8Array(0)).finish()), '2a00', 'empty bytes')
  const big = new Uint8Array(300).fill(7)
  const enc = new ProtoWriter().int(1, 1).bytes(2, big).finish()
  t.equal(hex(enc.subarray(0, 5)), '0801' + '12ac02', 'a 300-byte field: length 300 as a two-byte varint')
  t.equal(enc.byteLength, 5 + 300)
  const nested = new ProtoWriter().int(3, 2).message(4, new ProtoWriter().int(1, 1).bytes(2, big)).int(5, 3).finish()
  t.equal(hex(nested.subarray(0, 5)), '1802' + '22b102', 'a nested 305-byte message: its length before its fields')
  t.ok(Buffer.from(nested.subarray(5, 310)).equals(Buffer.from(enc)), 'the nested fields as the writer alone encodes them')
  t.equal(hex(nested.subarray(310)), '2803', 'fields after the nested message')
  t.throws(() => new ProtoWriter().int(0, 1), /invalid field number 0/)
  t.throws(() => new ProtoWriter().int(1, 2n ** 64n), /does not fit in 64 bits/)
})
