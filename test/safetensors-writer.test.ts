// writeSafetensorsChunked (lib/safetensors-writer.ts): the same bytes as serializeSafetensors for the same
// tensors, chunk boundaries included; a failure midway leaves the old file as it was and no temporary file;
// Tensor.toFloat32Array(out), which feeds it from native memory, checks its argument.
import t from 'tap'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { serializeSafetensors, type WritableDtype } from '../lib/safetensors.js'
import { chunksOf, writeSafetensorsChunked } from '../lib/safetensors-writer.js'
import { Tensor } from '../lib/tensor.js'
import { cudaStatus } from '../lib/index.js'
import { spreadValues as values } from './helpers/spread-values.js'

const dir = await fsp.mkdtemp(join(tmpdir(), 'simcsepp-st-writer-'))
t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))

const CHUNK = 1 << 20 // the writer's chunk, in elements

t.test('the bytes of serializeSafetensors, for every dtype and across chunk boundaries', async (t) => {
  const data: Record<string, { shape: number[]; data: Float32Array; dtype: WritableDtype }> = {
    'b.empty': { shape: [0, 4], data: new Float32Array(0), dtype: 'F32' },
    'a.big': { shape: [2, CHUNK + 2], data: values(2 * CHUNK + 4, 1), dtype: 'F32' },
    'c.bf16': { shape: [CHUNK + 5], data: values(CHUNK + 5, 2), dtype: 'BF16' },
    'd.f16': { shape: [7, 3], data: values(21, 3), dtype: 'F16' },
  }
  const file = join(dir, 'mixed.safetensors')
  const sourceTensor = Tensor.from(data['a.big']!.data, [2 * CHUNK + 4])
  t.teardown(() => sourceTensor.dispose())
  await writeSafetensorsChunked(
    file,
    Object.fromEntries(
      Object.entries(data).map(([name, d]) => [
        name,
        { shape: d.shape, dtype: d.dtype, fill: name === 'a.big' ? chunksOf(sourceTensor) : chunksOf(d.data) },
      ]),
    ),
    { metadata: { note: 'chunked' } },
  )
  const want = serializeSafetensors(data, { metadata: { note: 'chunked' } })
  const got = new Uint8Array(await fsp.readFile(file))
  t.equal(got.length, want.length, 'same length')
  t.ok(Buffer.compare(got, want) === 0, 'same bytes')
  t.same(
    (await fsp.readdir(dir)).filter((f) => f.includes('.tmp-')),
    [],
    'no temporary file left',
  )
})

t.test('chunksOf(tensor, offset) reads the elements from offset on', async (t) => {
  const v = values(50, 9)
  const tensor = Tensor.from(v, [50])
  t.teardown(() => tensor.dispose())
  const out = new Float32Array(7)
  chunksOf(tensor, 10)(out, 5)
  t.same([...out], [...v.subarray(15, 22)])
  chunksOf(v, 10)(out, 5)
  t.same([...out], [...v.subarray(15, 22)])
})

t.test('a fill that throws midway leaves the old file and no temporary file', async (t) => {
  const file = join(dir, 'keep.safetensors')
  await fsp.writeFile(file, 'the old contents')
  let calls = 0
  await t.rejects(
    writeSafetensorsChunked(file, {
      x: {
        shape: [3 * CHUNK],
        fill: () => {
          if (++calls === 2) throw new Error('device lost')
        },
      },
    }),
    /keep\.safetensors: cannot write safetensors file \(device lost\)/,
  )
  t.equal(await fsp.readFile(file, 'utf8'), 'the old contents')
  t.same(
    (await fsp.readdir(dir)).filter((f) => f.startsWith('keep.safetensors.tmp')),
    [],
  )
  await t.rejects(
    writeSafetensorsChunked(file, { x: { shape: [2] } as never }),
    /tensor "x": expected an object with a fill\(values, at\) function/,
  )
  await t.rejects(
    writeSafetensorsChunked(file, { x: { shape: [-1], fill: () => {} } }),
    /shape \[-1\] is not a list of non-negative integers/,
  )
})

t.test('Tensor.toFloat32Array(out): fills and returns out; a wrong out is an Error naming it', async (t) => {
  const tensor = Tensor.from(new Float32Array([1, 2, 3]), [3])
  t.teardown(() => tensor.dispose())
  const out = new Float32Array(3)
  t.equal(tensor.toFloat32Array(out), out, 'returns out itself')
  t.same([...out], [1, 2, 3])
  t.throws(() => tensor.toFloat32Array(new Float32Array(4)), /Expected out to hold 3 elements \(shape \[3\]\) but it holds 4/)
  t.throws(() => tensor.toFloat32Array(new Float64Array(3) as never), /Expected out to be a Float32Array but received/)
  t.throws(() => tensor.toFloat32Array([1, 2, 3] as never), /Expected out to be a Float32Array/)
  t.not(tensor.toFloat32Array(), out, 'without out: a new array')
})

const cuda = cudaStatus()
t.test(
  'a CUDA tensor writes the bytes its CPU copy does',
  { skip: cuda.available ? false : `CUDA unavailable: ${cuda.reason}` },
  async (t) => {
    const v = values(CHUNK + 17, 5)
    const onDevice = Tensor.from(v, [v.length], 'cuda')
    t.teardown(() => onDevice.dispose())
    const a = join(dir, 'from-cuda.safetensors'),
      b = join(dir, 'from-host.safetensors')
    await writeSafetensorsChunked(a, { w: { shape: [v.length], fill: chunksOf(onDevice) } })
    await writeSafetensorsChunked(b, { w: { shape: [v.length], fill: chunksOf(v) } })
    t.ok(Buffer.compare(await fsp.readFile(a), await fsp.readFile(b)) === 0, 'same bytes')
  },
)
