// SafetensorsReader (lib/safetensors-reader.ts): tensors read in chunks hold exactly what readSafetensors
// reads, whatever the dtype and across chunk boundaries; a file that shrinks after its header was read is an
// Error naming it. (Header errors: test/safetensors.test.ts runs every corrupt file through both readers.)
import t from 'tap'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { readSafetensors, writeSafetensors, type WritableDtype } from '../lib/safetensors.js'
import { SafetensorsReader } from '../lib/safetensors-reader.js'
import { spreadValues as values } from './helpers/spread-values.js'

const dir = await fsp.mkdtemp(join(tmpdir(), 'simcsepp-st-reader-'))
t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))

const CHUNK = 1 << 20 // the reader's chunk, in elements

async function readAll(reader: SafetensorsReader, name: string): Promise<{ data: Float32Array; chunks: number[] }> {
  const e = reader.entries.get(name)!
  const data = new Float32Array(e.shape.reduce((a, b) => a * b, 1))
  const chunks: number[] = []
  let expectAt = 0
  await reader.read(name, (v, at) => {
    if (at !== expectAt) throw new Error(`chunk at ${at}, expected ${expectAt}`)
    data.set(v, at)
    chunks.push(v.length)
    expectAt += v.length
  })
  return { data, chunks }
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length)

for (const dtype of ['F32', 'BF16', 'F16'] as WritableDtype[]) {
  t.test(`${dtype}: chunked reads equal readSafetensors, bit for bit, across chunk boundaries`, async (t) => {
    const file = join(dir, `${dtype}.safetensors`)
    const sizes: Record<string, number> = { empty: 0, one: 1, odd: 1001, exact: CHUNK, over: 2 * CHUNK + 3 }
    await writeSafetensors(
      file,
      Object.fromEntries(Object.entries(sizes).map(([name, n], i) => [name, { shape: [n], data: values(n, i + 1), dtype }])),
    )
    const whole = await readSafetensors(file)
    const reader = await SafetensorsReader.open(file)
    try {
      t.equal(reader.metadata.format, 'pt')
      for (const [name, n] of Object.entries(sizes)) {
        const { data, chunks } = await readAll(reader, name)
        t.same(
          chunks,
          n === 0 ? [] : Array.from({ length: Math.ceil(n / CHUNK) }, (_, i) => Math.min(CHUNK, n - i * CHUNK)),
          `${name}: chunks`,
        )
        const expected = whole.get(name)!.data
        let differ = 0
        for (let i = 0; i < n; i++) if (bits(data)[i] !== bits(expected)[i]) differ++
        t.equal(differ, 0, `${name}: ${n} values, none differs`)
      }
      await t.rejects(
        reader.read('nope', () => {}),
        /no tensor named "nope"/,
      )
    } finally {
      await reader.close()
    }
  })
}

t.test('a file cut short after its header was read: an Error naming the file and the tensor', async (t) => {
  const file = join(dir, 'shrinks.safetensors')
  await writeSafetensors(file, { a: { shape: [3 * CHUNK], data: values(3 * CHUNK, 9) } })
  const reader = await SafetensorsReader.open(file)
  try {
    await fsp.truncate(file, (await fsp.stat(file)).size - 4 * CHUNK)
    let seen = 0
    await t.rejects(
      reader.read('a', (v) => {
        seen += v.length
      }),
      new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the file ends at byte \\d+, inside tensor "a"`),
    )
    t.equal(seen, 2 * CHUNK, 'the chunks before the cut were delivered')
  } finally {
    await reader.close()
  }
})

t.test('an Error thrown by the callback stops the read and reaches the caller', async (t) => {
  const file = join(dir, 'stop.safetensors')
  await writeSafetensors(file, { a: { shape: [2 * CHUNK + 1], data: values(2 * CHUNK + 1, 4) } })
  const reader = await SafetensorsReader.open(file)
  try {
    let calls = 0
    await t.rejects(
      reader.read('a', () => {
        calls++
        throw new Error('stop here')
      }),
      /stop here/,
    )
    t.equal(calls, 1)
    t.equal((await readAll(reader, 'a')).data[2 * CHUNK], values(2 * CHUNK + 1, 4)[2 * CHUNK], 'the reader still works afterwards')
  } finally {
    await reader.close()
  }
})
