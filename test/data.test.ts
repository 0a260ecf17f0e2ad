// The training data source: line indexing, validation errors, seeded permutations, resumable batches.
import t from 'tap'
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { SentenceFile, BatchStream, permutation, type DataPosition } from '../lib/data/sentences.js'
import { firstInvalidUtf8 } from '../lib/data/text-lines.js'

const dir = await fsp.mkdtemp(join(tmpdir(), 'simcsepp-data-'))
t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
let n = 0
async function write(content: string | Buffer): Promise<string> {
  const p = join(dir, `f${n++}.txt`)
  await fsp.writeFile(p, content)
  return p
}
async function all(f: SentenceFile): Promise<string[]> {
  return f.readLines(Array.from({ length: f.count }, (_, i) => i))
}

t.test('lines with \\n and \\r\\n endings, blank lines skipped, unicode kept', async (t) => {
  for (const nl of ['\n', '\r\n']) {
    const lines = ['first line', '', '   ', 'Zürich – 東京 🚀 naïve', '\t', 'last without newline']
    const f = await SentenceFile.open(await write(lines.join(nl)))
    t.equal(f.count, 3, `${JSON.stringify(nl)}: blank lines are not counted`)
    t.same(await all(f), ['first line', 'Zürich – 東京 🚀 naïve', 'last without newline'])
    t.same(await f.readLines([2, 0, 2]), ['last without newline', 'first line', 'last without newline'], 'any order, repeats')
    await f.close()
  }
})

t.test('a UTF-8 byte-order mark is not part of the first sentence', async (t) => {
  const f = await SentenceFile.open(await write(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('hello\nworld\n')])))
  t.same(await all(f), ['hello', 'world'])
  await f.close()
})

t.test('invalid UTF-8 is reported with its line number and byte offset', async (t) => {
  const good = Buffer.from('ok line\n\nsecond ok\n') // 19 bytes, 3 lines
  const bad = Buffer.concat([good, Buffer.from('bad '), Buffer.from([0xff, 0x41]), Buffer.from('\nmore\n')])
  const p = await write(bad)
  await t.rejects(SentenceFile.open(p), { message: new RegExp(`${p}: invalid UTF-8 on line 4 \\(byte offset 23\\)`) })
  // A truncated multi-byte sequence at the end of a line.
  await t.rejects(SentenceFile.open(await write(Buffer.concat([Buffer.from('é\n'), Buffer.from([0x61, 0xe2, 0x82])]))), {
    message: /line 2 \(byte offset 4\)/,
  })
  t.equal(firstInvalidUtf8(Buffer.from([0x61, 0xed, 0xa0, 0x80])), 1, 'surrogates are invalid')
  t.equal(firstInvalidUtf8(Buffer.from([0xc0, 0x80])), 0, 'overlong encodings are invalid')
  t.equal(firstInvalidUtf8(Buffer.from('fine ✓')), Buffer.byteLength('fine ✓'))
})

t.test('empty, blank-only, missing and directory paths are clear errors', async (t) => {
  const empty = await write('')
  await t.rejects(SentenceFile.open(empty), { message: `${empty}: the file is empty` })
  const blank = await write('\n  \r\n\t\n')
  await t.rejects(SentenceFile.open(blank), { message: `${blank}: the file holds only blank lines` })
  const missing = join(dir, 'nope.txt')
  await t.rejects(SentenceFile.open(missing), { message: `${missing}: no such file` })
  await t.rejects(SentenceFile.open(dir), { message: new RegExp(`${dir}: is a directory`) })
})

t.test('a 1000-line file (with lines spanning read chunks) reads back exactly', async (t) => {
  // Long lines make a 1 MiB stream chunk end mid-line (and mid-character).
  const lines = Array.from({ length: 1000 }, (_, i) => `sentence ${i} ` + 'ß€'.repeat((i * 37) % 900))
  const f = await SentenceFile.open(await write(lines.join('\n') + '\n'))
  t.equal(f.count, 1000)
  t.same(await all(f), lines)
  const pick = [999, 0, 500, 501, 3, 998]
  t.same(
    await f.readLines(pick),
    pick.map((i) => lines[i]),
  )
  await t.rejects(f.readLines([1000]), RangeError)
  await f.close()
})

t.test('epoch orders are seeded permutations', async (t) => {
  const isPerm = (p: Uint32Array) => [...p].sort((a, b) => a - b).every((v, i) => v === i)
  const p = permutation(1000, 42, 0)
  t.ok(isPerm(p), 'a permutation')
  t.same(permutation(1000, 42, 0), p, 'deterministic')
  t.notSame(permutation(1000, 42, 1), p, 'another epoch, another order')
  t.notSame(permutation(1000, 43, 0), p, 'another seed, another order')
  t.ok(isPerm(permutation(1, 1, 0)) && isPerm(permutation(2, 1, 5)))
  // Pinned: the order must never change across machines or versions (resumed runs depend on it).
  t.same([...permutation(10, 42, 0)], [1, 6, 5, 7, 2, 3, 9, 0, 8, 4], 'pinned order for (n=10, seed=42, epoch=0)')
  t.same([...permutation(8, 7, 3)], [5, 0, 4, 7, 2, 1, 6, 3], 'pinned order for (n=8, seed=7, epoch=3)')
  // Uniformity, roughly: each value lands in position 0 about equally often.
  const hits = new Array(4).fill(0)
  for (let s = 0; s < 4000; s++) hits[permutation(4, s, 0)[0]]++
  t.ok(
    hits.every((h) => h > 850 && h < 1150),
    `first-position counts ${hits}`,
  )
})

t.test('BatchStream: batches in epoch order, crossing epochs, resumable from its position', async (t) => {
  const lines = Array.from({ length: 23 }, (_, i) => `s${i}`)
  const f = await SentenceFile.open(await write(lines.join('\n')))
  t.teardown(() => f.close())
  const opts = { batchSize: 5, seed: 42 }

  // 23 = 4×5 + 3: each epoch has 4 full batches and one of 3.
  t.equal(BatchStream.batchesPerEpoch(23, 5), 5)
  const ref = new BatchStream(f, opts)
  const batches = []
  for (let i = 0; i < 12; i++) batches.push(await ref.next())
  t.same(
    batches.map((b) => b.sentences.length),
    [5, 5, 5, 5, 3, 5, 5, 5, 5, 3, 5, 5],
  )
  t.same(
    batches.map((b) => b.epoch),
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2],
  )
  const epoch0 = batches.slice(0, 5).flatMap((b) => b.sentences)
  t.same(
    epoch0,
    [...f.epochOrder(0, 42)].map((i) => lines[i]),
    'epoch 0 follows epochOrder(0, seed)',
  )
  t.same([...epoch0].sort(), [...lines].sort(), 'every sentence once per epoch')
  t.notSame(
    batches.slice(5, 10).flatMap((b) => b.sentences),
    epoch0,
    'reshuffled in epoch 1',
  )

  // Resume after k batches, for k before, at and after the epoch boundary.
  for (const k of [0, 3, 4, 5, 7]) {
    const s = new BatchStream(f, opts)
    for (let i = 0; i < k; i++) await s.next()
    const saved = JSON.parse(JSON.stringify(s.position)) as DataPosition
    const resumed = new BatchStream(f, { ...opts, start: saved })
    const rest = []
    for (let i = k; i < 12; i++) rest.push((await resumed.next()).sentences)
    t.same(
      rest,
      batches.slice(k).map((b) => b.sentences),
      `resumed after ${k} batches at ${JSON.stringify(saved)}`,
    )
  }
  t.same(new BatchStream(f, { ...opts, prefetch: false }).position, { epoch: 0, index: 0 })
})

t.test('BatchStream: a lone last sentence is skipped, never a batch of 1', async (t) => {
  const f = await SentenceFile.open(await write(Array.from({ length: 11 }, (_, i) => `line ${i}`).join('\n')))
  t.teardown(() => f.close())
  t.equal(BatchStream.batchesPerEpoch(11, 5), 2)
  const s = new BatchStream(f, { batchSize: 5, seed: 1 })
  const sizes = []
  for (let i = 0; i < 5; i++) sizes.push((await s.next()).sentences.length)
  t.same(sizes, [5, 5, 5, 5, 5])
  t.same(s.position, { epoch: 2, index: 5 })
  // A saved position on the lone sentence moves on to the next epoch.
  t.same(new BatchStream(f, { batchSize: 5, seed: 1, start: { epoch: 0, index: 10 } }).position, { epoch: 1, index: 0 })
  t.throws(() => new BatchStream(f, { batchSize: 1, seed: 1 }), RangeError)
  t.throws(() => new BatchStream(f, { batchSize: 4, seed: 1, start: { epoch: 0, index: 12 } }), RangeError)
  t.throws(() => new BatchStream(f, { batchSize: 4, seed: 1, start: { epoch: -1, index: 0 } as DataPosition }), RangeError)
})

t.test('BatchStream over the real wiki1m head', async (t) => {
  const path = new URL('../../shared/data/wiki1m-head.txt', import.meta.url).pathname
  const exists = await fsp.stat(path).then(
    () => true,
    () => false,
  )
  if (!exists) {
    t.comment(`skipping: ${path} not found (../shared/data is absent outside the development checkout)`)
    return
  }
  const f = await SentenceFile.open(path)
  t.teardown(() => f.close())
  t.ok(f.count > 11_000, `${f.count} sentences`)
  const b = await new BatchStream(f, { batchSize: 64, seed: 42 }).next()
  t.equal(b.sentences.length, 64)
  t.ok(b.sentences.every((s) => s.trim().length > 0 && !s.includes('\n')))
})

t.test('SentenceFile: fingerprint of the contents, bare CRs and blank lines', async (t) => {
  const a = await SentenceFile.open(await write('one two\nthree four\n\nfive six\n'))
  t.equal(a.fingerprint.lines, 3)
  t.equal(a.fingerprint.bytes, 29)
  t.equal(a.fingerprint.sha256, createHash('sha256').update('one two\nthree four\n\nfive six\n').digest('hex'))
  const b = await SentenceFile.open(await write('one two\nthree four\n\nfive six\nseven\n'))
  t.not(b.fingerprint.sha256, a.fingerprint.sha256, 'a line appended changes the fingerprint')
  const mac = await write('first sentence\rsecond sentence\rthird\r')
  await t.rejects(SentenceFile.open(mac), {
    message: new RegExp(`${mac}: line 1 holds a carriage return \\(byte offset 14\\) that does not end the line`),
  })
  t.equal((await SentenceFile.open(await write('a b\r\nc d\r\n'))).count, 2, 'CRLF is fine')
  const blank = await write('a b\n\nc d\n')
  await t.rejects(SentenceFile.open(blank, { blankLines: 'error' }), {
    message: `${blank}: line 2 is blank (one sentence per line is expected)`,
  })
  t.equal((await SentenceFile.open(blank)).count, 2)
})
