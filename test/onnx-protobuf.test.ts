// The protobuf wire encoder against the byte sequences of protobuf's encoding guide
// (https://protobuf.dev/programming-guides/encoding/), and an ONNX attribute decoded back by hand; deferred
// parts and the streaming file writer against the joined message; the blocked transpose.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ProtoWriter } from '../lib/export/protobuf.js'
import { writeProtoFile } from '../lib/export/write-proto-file.js'
import { transposeInto } from '../lib/export/bert-graph.js'
import { ReusedBuffer } from '../lib/export/graph-builder.js'

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

t.test('deferred bytes: made only when joined or written, the same bytes as given up front; a wrong length is an Error', async (t) => {
  const big = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 255)
  let made = 0
  const deferred = {
    byteLength: big.byteLength,
    bytes: () => {
      made++
      return big
    },
  }
  const eager = new ProtoWriter().int(3, 2).message(4, new ProtoWriter().int(1, 1).bytes(2, big)).int(5, 3).finish()
  const lazy = new ProtoWriter().int(3, 2).message(4, new ProtoWriter().int(1, 1).bytes(2, deferred)).int(5, 3)
  t.equal(made, 0, 'not made while the message is built')
  t.equal(lazy.byteLength, eager.byteLength, 'its length is known before its bytes')
  const parts = lazy.parts()
  t.ok(parts.includes(deferred), 'parts() hands the deferred part over unmade')
  t.equal(made, 0)
  t.equal(hex(lazy.finish()), hex(eager), 'finish() makes it: the same bytes')
  t.equal(made, 1)
  const short = new ProtoWriter().bytes(1, { byteLength: 10, bytes: () => new Uint8Array(9) })
  t.throws(() => short.finish(), /a deferred field made 9 bytes where 10 were announced/)
})

t.test(
  'writeProtoFile: the bytes of finish(), small parts gathered, deferred parts written before the next is made; a failure keeps the old file',
  async (t) => {
    const dir = t.testdir({ 'old.onnx': 'old contents' })
    const sizes = [5, 2 ** 20 + 3, 17, 2 ** 20 - 1, 0, 300]
    const buffer = new Uint8Array(2 ** 21)
    const build = () => {
      const w = new ProtoWriter()
      sizes.forEach((n, k) => {
        w.int(1, k)
        // Every deferred part returns the same reused buffer filled anew: the writer must have written one
        // before making the next, or the file would hold the last part's bytes in an earlier place.
        w.bytes(2, { byteLength: n, bytes: () => buffer.subarray(0, n).fill(k + 1) })
        w.bytes(
          3,
          Uint8Array.from({ length: n % 1000 }, (_, i) => (i + k) & 255),
        )
      })
      return w
    }
    const file = join(dir, 'model.onnx')
    const bytes = await writeProtoFile(file, build().parts())
    const expected = build().finish()
    t.equal(bytes, expected.byteLength)
    t.ok(readFileSync(file).equals(Buffer.from(expected)), 'the file holds exactly the joined message')

    const failing = new ProtoWriter().int(1, 1).bytes(2, {
      byteLength: 4,
      bytes: () => {
        throw new Error('the tensor is gone')
      },
    })
    await t.rejects(writeProtoFile(join(dir, 'old.onnx'), failing.parts()), /the tensor is gone/)
    t.equal(readFileSync(join(dir, 'old.onnx'), 'utf8'), 'old contents', 'the old file is untouched')
    t.same(readdirSync(dir).sort(), ['model.onnx', 'old.onnx'], 'no temporary file left behind')
  },
)

t.test('transposeInto: the transpose of row-major matrices of odd sizes, across 64 x 64 block edges', async (t) => {
  for (const [rows, cols] of [
    [1, 1],
    [1, 7],
    [5, 1],
    [64, 64],
    [65, 130],
    [200, 3],
  ]) {
    const a = Float32Array.from({ length: rows * cols }, (_, i) => i + 0.5)
    const out = new Float32Array(rows * cols).fill(NaN)
    transposeInto(a, out, rows, cols)
    let wrong = 0
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (out[c * rows + r] !== a[r * cols + c]) wrong++
    t.equal(wrong, 0, `${rows} x ${cols}`)
  }
})

t.test('ReusedBuffer: exactly the elements asked for, one array reused until more is asked', async (t) => {
  const b = new ReusedBuffer(Float32Array)
  const x = b.take(10)
  t.equal(x.length, 10)
  const y = b.take(4)
  t.equal(y.length, 4)
  t.equal(y.buffer, x.buffer, 'reused')
  const z = b.take(11)
  t.equal(z.length, 11)
  t.not(z.buffer, x.buffer, 'grown')
})
