import t from 'tap'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import {
  readSafetensors,
  readSafetensorsWithMetadata,
  parseSafetensors,
  serializeSafetensors,
  writeSafetensors,
  floatToHalf,
  halfToFloat,
  floatToBf16,
  bf16ToFloat,
} from '../lib/safetensors.js'
import { SafetensorsReader } from '../lib/safetensors-reader.js'

const dir = await fsp.mkdtemp(join(tmpdir(), 'simcsepp-st-'))
t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))

function bitsOf(a: Float32Array): number[] {
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)]
}

/** Builds a safetensors buffer from a raw header object and raw data bytes. */
function build(header: unknown, data: Uint8Array, opts: { headerText?: string; headerLen?: bigint } = {}): Uint8Array {
  const text = opts.headerText ?? JSON.stringify(header)
  const h = new TextEncoder().encode(text)
  const out = new Uint8Array(8 + h.length + data.length)
  new DataView(out.buffer).setBigUint64(0, opts.headerLen ?? BigInt(h.length), true)
  out.set(h, 8)
  out.set(data, 8 + h.length)
  return out
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed JSON header, indexed freely
function headerOf(buf: Uint8Array): Record<string, any> {
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true))
  return JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)))
}

t.test('F32 round trip keeps every bit', async (t) => {
  const special = new Uint32Array([
    0x00000000, // +0
    0x80000000, // -0
    0x00000001, // smallest denormal
    0x807fffff, // largest negative denormal
    0x00400000, // denormal
    0x7f7fffff, // max float
    0x7f800000, // +inf
    0xff800000, // -inf
    0x7fc00000, // canonical NaN
    0x3f800000, // 1
    0xbeaaaaab, // -1/3
  ])
  const a = new Float32Array(special.buffer)
  const b = new Float32Array(2 * 3 * 4)
  for (let i = 0; i < b.length; i++) b[i] = Math.sin(i * 12.9898) * 43758.5453
  const file = join(dir, 'rt.safetensors')
  await writeSafetensors(
    file,
    new Map([
      ['z.last', { shape: [special.length], data: a }],
      ['a.first', { shape: [2, 3, 4], data: b }],
      ['m.empty', { shape: [0, 5], data: new Float32Array(0) }],
      ['s.scalar', { shape: [], data: new Float32Array([7.5]) }],
    ]),
    { metadata: { note: 'hello' } },
  )
  t.same(
    (await fsp.readdir(dir)).filter((f) => f.includes('.tmp-')),
    [],
    'no temporary file left behind',
  )
  const raw = new Uint8Array(await fsp.readFile(file))
  const headerLen = Number(new DataView(raw.buffer).getBigUint64(0, true))
  t.equal(headerLen % 8, 0, 'header length is a multiple of 8')
  const header = headerOf(raw)
  t.same(header.__metadata__, { note: 'hello', format: 'pt' })
  const names = Object.keys(header).filter((k) => k !== '__metadata__')
  t.same(names, ['a.first', 'm.empty', 's.scalar', 'z.last'], 'tensors sorted by name')
  let offset = 0
  for (const n of names) {
    t.equal(header[n].data_offsets[0], offset, `${n} starts where the previous ended`)
    offset = header[n].data_offsets[1]
    t.equal(header[n].dtype, 'F32')
  }
  t.equal(raw.length, 8 + headerLen + offset, 'file ends with the last tensor')

  const { tensors, metadata } = await readSafetensorsWithMetadata(file)
  t.equal(metadata.format, 'pt')
  t.same(bitsOf(tensors.get('z.last')!.data), [...special], 'special values bit-exact')
  t.same(bitsOf(tensors.get('a.first')!.data), bitsOf(b))
  t.same(tensors.get('a.first')!.shape, [2, 3, 4])
  t.same(tensors.get('m.empty')!.shape, [0, 5])
  t.equal(tensors.get('m.empty')!.data.length, 0)
  t.same(tensors.get('s.scalar')!.shape, [])
  t.same([...tensors.get('s.scalar')!.data], [7.5])
  t.equal(tensors.get('a.first')!.dtype, 'F32')

  // Record input works too, and the buffer variant agrees with the file.
  const again = serializeSafetensors({ x: { shape: [2], data: new Float32Array([1, 2]) } })
  t.same([...parseSafetensors(again).tensors.get('x')!.data], [1, 2])
})

t.test('F16, BF16, F64 and integer tensors are read and converted', async (t) => {
  const f16 = [
    [0x3c00, 1],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14],
    [0x8000, -0],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
    [0x3555, 0.333251953125],
  ] as const
  const bf16 = [
    [0x3f80, 1],
    [0xc0a0, -5],
    [0x7f80, Infinity],
    [0x0001, 2 ** -133],
    [0x3eaa, 0.33203125],
    [0x8000, -0],
  ] as const
  const f16Bytes = new Uint8Array(2 * (f16.length + 1))
  const f16View = new DataView(f16Bytes.buffer)
  f16.forEach(([bits], i) => f16View.setUint16(2 * i, bits, true))
  f16View.setUint16(2 * f16.length, 0x7e00, true) // NaN
  const bfBytes = new Uint8Array(2 * bf16.length)
  bf16.forEach(([bits], i) => new DataView(bfBytes.buffer).setUint16(2 * i, bits, true))
  const f64Bytes = new Uint8Array(16)
  new DataView(f64Bytes.buffer).setFloat64(0, 0.1, true)
  new DataView(f64Bytes.buffer).setFloat64(8, -3.5, true)
  const i64Bytes = new Uint8Array(8 * 4)
  for (let i = 0; i < 4; i++) new DataView(i64Bytes.buffer).setBigInt64(8 * i, BigInt(i), true)
  const i32Bytes = new Uint8Array(8)
  new DataView(i32Bytes.buffer).setInt32(0, -7, true)
  new DataView(i32Bytes.buffer).setInt32(4, 123456, true)

  const parts = [f16Bytes, bfBytes, f64Bytes, i64Bytes, i32Bytes]
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  const offsets: [number, number][] = []
  let at = 0
  for (const p of parts) {
    data.set(p, at)
    offsets.push([at, at + p.length])
    at += p.length
  }
  const header = {
    __metadata__: { format: 'pt' },
    half: { dtype: 'F16', shape: [f16.length + 1], data_offsets: offsets[0] },
    brain: { dtype: 'BF16', shape: [2, 3], data_offsets: offsets[1] },
    double: { dtype: 'F64', shape: [2], data_offsets: offsets[2] },
    'embeddings.position_ids': { dtype: 'I64', shape: [1, 4], data_offsets: offsets[3] },
    ints: { dtype: 'I32', shape: [2], data_offsets: offsets[4] },
  }
  const file = join(dir, 'mixed.safetensors')
  await fsp.writeFile(file, build(header, data))
  const m = await readSafetensors(file)

  const half = m.get('half')!
  t.equal(half.dtype, 'F16')
  f16.forEach(([bits, v], i) => t.ok(Object.is(half.data[i], v), `F16 0x${bits.toString(16)} -> ${v}`))
  t.ok(Number.isNaN(half.data[f16.length]), 'F16 NaN')

  const brain = m.get('brain')!
  t.same(brain.shape, [2, 3])
  bf16.forEach(([bits, v], i) => t.ok(Object.is(brain.data[i], Math.fround(v)), `BF16 0x${bits.toString(16)} -> ${v}`))

  t.same([...m.get('double')!.data], [Math.fround(0.1), -3.5])
  const pos = m.get('embeddings.position_ids')!
  t.equal(pos.dtype, 'I64')
  t.same([...pos.data], [0, 1, 2, 3])
  t.same(pos.raw, i64Bytes, 'raw bytes kept for integer dtypes')
  t.same([...m.get('ints')!.data], [-7, 123456])
})

t.test('F16 / BF16 writing rounds to nearest even', async (t) => {
  t.equal(floatToHalf(1), 0x3c00)
  t.equal(floatToHalf(1 + 2 ** -11), 0x3c00, 'tie rounds to even (down)')
  t.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02, 'tie rounds to even (up)')
  t.equal(floatToHalf(65520), 0x7c00, 'overflow to infinity')
  t.equal(floatToHalf(2 ** -24), 0x0001)
  t.equal(floatToHalf(2 ** -25), 0x0000, 'half the smallest denormal ties to zero')
  t.equal(floatToHalf(-0), 0x8000)
  t.ok(Number.isNaN(halfToFloat(floatToHalf(NaN))))
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue // NaNs
    if (floatToHalf(halfToFloat(h)) !== h) {
      t.fail(`half 0x${h.toString(16)} does not round trip`)
      break
    }
  }
  t.equal(floatToBf16(1), 0x3f80)
  t.equal(floatToBf16(1 + 2 ** -8), 0x3f80, 'bf16 tie to even (down)')
  t.equal(floatToBf16(1 + 3 * 2 ** -8), 0x3f82, 'bf16 tie to even (up)')
  t.ok(Number.isNaN(bf16ToFloat(floatToBf16(NaN))))

  const values = new Float32Array([1, -2, 0.5, 3.140625, -0, 1024])
  const file = join(dir, 'low.safetensors')
  await writeSafetensors(file, { a: { shape: [6], data: values }, b: { shape: [6], data: values, dtype: 'F32' } }, { dtype: 'BF16' })
  const m = await readSafetensors(file)
  t.equal(m.get('a')!.dtype, 'BF16')
  t.equal(m.get('b')!.dtype, 'F32', 'per-tensor dtype wins')
  t.same(bitsOf(m.get('a')!.data), bitsOf(values), 'bf16-representable values survive')
  await writeSafetensors(file, { a: { shape: [6], data: values } }, { dtype: 'F16' })
  const h = (await readSafetensors(file)).get('a')!
  t.equal(h.dtype, 'F16')
  t.same(bitsOf(h.data), bitsOf(values))
})

t.test('writer rejects bad input with a clear error', async (t) => {
  const file = join(dir, 'bad-write.safetensors')
  await t.rejects(writeSafetensors(file, { a: { shape: [3], data: new Float32Array(2) } }), /bad-write.*"a".*3 values.*2/)
  await t.rejects(writeSafetensors(file, { a: { shape: [-1], data: new Float32Array(0) } }), /"a".*shape/)
  await t.rejects(writeSafetensors(file, { __metadata__: { shape: [1], data: new Float32Array(1) } }), /invalid tensor name/)
  await t.rejects(
    writeSafetensors(join(dir, 'no-such-dir', 'x.safetensors'), { a: { shape: [1], data: new Float32Array(1) } }),
    /no-such-dir.*cannot write/,
  )
})

t.test('corrupt files reject with an Error that names the file and the problem', async (t) => {
  const good = serializeSafetensors({
    a: { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    b: { shape: [3], data: new Float32Array([5, 6, 7]) },
  })
  const headerLen = Number(new DataView(good.buffer).getBigUint64(0, true))
  const header = headerOf(good)
  const data = good.subarray(8 + headerLen)

  const cases: [string, Uint8Array, RegExp][] = [
    ['empty', new Uint8Array(0), /too short/],
    ['4 bytes', good.subarray(0, 4), /too short/],
    ['7 bytes', good.subarray(0, 7), /too short/],
    ['just the length', good.subarray(0, 8), /header length \d+ is larger/],
    ['half the header', good.subarray(0, 8 + (headerLen >> 1)), /header length \d+ is larger/],
    ['header only', good.subarray(0, 8 + headerLen), /"a".*past the end.*truncated/],
    ['data cut short', good.subarray(0, good.length - 3), /"b".*past the end.*truncated/],
    ['huge header length', build(header, data, { headerLen: 1n << 60n }), /header length 1152921504606846976 is larger/],
    ['bad JSON', build(null, data, { headerText: '{"a": {"dtype": "F32",' }), /not valid JSON/],
    ['header is an array', build([1, 2], data), /not an object/],
    ['header is a string', build('x', data), /not an object/],
    ['not UTF-8', build(null, data, { headerText: '{}  ' }).fill(0xff, 10, 12), /not valid UTF-8/],
    ['unknown dtype', build({ ...header, a: { ...header.a, dtype: 'Q4' } }, data), /"a".*unknown dtype "Q4"/],
    ['shape not a list', build({ ...header, a: { ...header.a, shape: 4 } }, data), /"a".*shape 4 is not a list/],
    ['negative dim', build({ ...header, a: { ...header.a, shape: [-2, -2] } }, data), /"a".*non-negative integers/],
    ['fractional dim', build({ ...header, a: { ...header.a, shape: [1.5, 2] } }, data), /"a".*non-negative integers/],
    ['offsets wrong size', build({ ...header, a: { ...header.a, data_offsets: [0, 12] } }, data), /"a".*span 12 bytes.*needs 16/],
    ['offsets reversed', build({ ...header, a: { ...header.a, data_offsets: [16, 0] } }, data), /"a".*end before begin/],
    ['offsets not a pair', build({ ...header, a: { ...header.a, data_offsets: [0] } }, data), /"a".*data_offsets/],
    ['offsets out of range', build({ ...header, b: { ...header.b, data_offsets: [100, 112] } }, data), /"b".*past the end/],
    ['overlapping', build({ ...header, b: { ...header.b, data_offsets: [4, 16] } }, data), /overlapping/],
    ['entry not an object', build({ ...header, a: 3 }, data), /"a".*not an object/],
    ['metadata not strings', build({ ...header, __metadata__: { format: 1 } }, data), /__metadata__\.format.*not a string/],
  ]
  for (const [what, bytes, re] of cases) {
    const file = join(dir, `corrupt-${what.replace(/\W+/g, '-')}.safetensors`)
    await fsp.writeFile(file, bytes)
    const err = await readSafetensors(file).then(
      () => null,
      (e: unknown) => e,
    )
    t.ok(err instanceof Error, `${what}: rejects with an Error`)
    const msg = (err as Error | null)?.message ?? ''
    t.match(msg, re, `${what}: ${msg}`)
    t.ok(msg.includes(file), `${what}: message names the file`)
    // The chunked reader checks the header the same way when it opens the file.
    const opened = await SafetensorsReader.open(file).then(
      async (r) => {
        await r.close()
        return null
      },
      (e: unknown) => e,
    )
    t.equal((opened as Error | null)?.message, msg, `reader, ${what}: the same message`)
  }
  // Sanity: the uncorrupted buffer parses.
  t.same([...parseSafetensors(good).tensors.get('b')!.data], [5, 6, 7])
  await t.rejects(readSafetensors(join(dir, 'missing.safetensors')), /missing\.safetensors: cannot read/)
})
