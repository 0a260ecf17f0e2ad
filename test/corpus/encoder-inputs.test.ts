// Regression corpus of the adversarial pass on what the encoder reads (issue 9): a saved model is
// encoded with the max_seq_length and do_lower_case of its sentence_bert_config.json, so the STS score
// of training and `simcsepp eval` on the saved directory agree; `encode --file` and the STS readers
// decode files as `train` does (invalid UTF-8, bare carriage returns and blank lines are errors naming
// the line); a config.json asking for an absurd model is a short error in milliseconds, also through
// the SentenceEncoder's worker, and the process lives on.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SentenceEncoder } from '../../lib/index.js'
import { BertModel } from '../../lib/model/bert.js'
import { namedConfig } from '../../lib/model/config.js'
import { readStsFile } from '../../lib/eval/sts.js'
import { train } from '../../lib/train/train.js'
import { writeVocab } from '../../lib/train/vocab.js'
import { writeSentenceTransformersFiles } from '../../lib/train/sentence-transformers.js'

const root = mkdtempSync(join(tmpdir(), 'simcsepp-inputs-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const WORDS = ['the', 'a', 'cat', 'dog', 'bird', 'sat', 'on', 'mat', 'and', 'by', 'big', 'red', 'house', 'river', 'tree', 'sees']
const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...WORDS]
const LONG = 'the cat sat on the mat and the dog sat by the big red house by the river' // 17 words: more than 8 tokens

/** A tiny random BERT with a vocab.txt in a new directory. */
async function tinyModel(name: string, seed = 1): Promise<string> {
  const dir = join(root, name)
  mkdirSync(dir)
  await writeVocab(join(dir, 'vocab.txt'), VOCAB)
  const model = BertModel.create(namedConfig('tiny', VOCAB.length), { seed })
  await model.save(dir)
  model.dispose()
  return dir
}

async function vectorOf(dir: string, sentence: string, options: { maxLength?: number } = {}) {
  const enc = await SentenceEncoder.load(dir, { device: 'cpu', ...options })
  try {
    return { vector: await enc.encode(sentence), maxLength: enc.maxLength, lowercase: enc.lowercase }
  } finally {
    await enc.close()
  }
}

const same = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

/** The CLI from the sources (the parent's TypeScript loader), so it is the code under test and not a stale dist/. */
function cli(args: string[]) {
  const r = spawnSync(process.execPath, [...process.execArgv, join(process.cwd(), 'lib', 'cli.ts'), ...args], { encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** train()'s error for this data file: the reference for what encode must say. */
async function trainError(data: string): Promise<string> {
  const out = mkdtempSync(join(root, 'train-'))
  const e = await train({ config: 'tiny', data, out, steps: 1, batchSize: 2, evalEvery: 0 }).then(
    () => null,
    (e: Error) => e,
  )
  if (!e) throw new Error(`train accepted ${data}`)
  return e.message
}

t.test('max_seq_length from sentence_bert_config.json is the default maxLength; maxLength overrides it', async (t) => {
  const dir = await tinyModel('max-seq-length')
  await writeSentenceTransformersFiles(dir, 128, 8, 'cls') // as train writes them for --max-len 8
  const fromFile = await vectorOf(dir, LONG)
  t.equal(fromFile.maxLength, 8, 'max_seq_length 8 read from sentence_bert_config.json')
  const at8 = await vectorOf(dir, LONG, { maxLength: 8 })
  t.ok(same(fromFile.vector, at8.vector), 'equal to the vector with an explicit maxLength 8')
  const at128 = await vectorOf(dir, LONG, { maxLength: 128 })
  t.equal(at128.maxLength, 128, 'an explicit maxLength overrides the file')
  t.notOk(same(fromFile.vector, at128.vector), 'and gives another vector for a sentence longer than 8 tokens')

  // The model's 512 positions bound both, clamping (the CLI says so).
  t.equal((await vectorOf(dir, LONG, { maxLength: 4096 })).maxLength, 512, "a maxLength beyond the model's positions is clamped")
  const noted = cli(['encode', '--model', dir, '--max-len', '4096', '--device', 'cpu', 'the cat'])
  t.equal(noted.status, 0, noted.stderr)
  t.equal(noted.stderr, "simcsepp: --max-len 4096 is more than the model's 512 positions: using 512\n")
  writeFileSync(join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 4096, do_lower_case: false }))
  t.equal((await vectorOf(dir, LONG)).maxLength, 512, "a max_seq_length beyond the model's positions is clamped to them")
  writeFileSync(join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: null }))
  t.equal((await vectorOf(dir, LONG)).maxLength, 128, 'max_seq_length null (sentence-transformers: infer) falls back to 128')
  writeFileSync(join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: '8' }))
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), {
    message: /sentence_bert_config\.json: max_seq_length must be an integer >= 3, got "8"$/,
  })
})

t.test('do_lower_case from sentence_bert_config.json lowercases before a cased tokenizer', async (t) => {
  const dir = await tinyModel('lower-case', 2)
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false })) // cased WordPiece
  await writeSentenceTransformersFiles(dir, 128, 32, 'cls')
  const cased = await vectorOf(dir, 'THE CAT')
  t.equal(cased.lowercase, false)
  t.notOk(same(cased.vector, (await vectorOf(dir, 'the cat')).vector), 'without do_lower_case, case matters')
  writeFileSync(join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 32, do_lower_case: true }))
  const lowered = await vectorOf(dir, 'THE CAT')
  t.equal(lowered.lowercase, true)
  t.ok(same(lowered.vector, (await vectorOf(dir, 'the cat')).vector), 'with do_lower_case, THE CAT is encoded as the cat')
})

t.test('the STS score of training equals `simcsepp eval` on the saved directory', async (t) => {
  let s = 5
  const rnd = (n: number) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) % n
  const sentence = () => Array.from({ length: 10 + rnd(8) }, () => WORDS[rnd(WORDS.length)]).join(' ')
  const data = join(root, 'sts-train.txt')
  writeFileSync(data, Array.from({ length: 40 }, sentence).join('\n') + '\n')
  const sts = join(root, 'sts-dev.tsv')
  const pairs = Array.from({ length: 40 }, (_, i) => `g\tf\t2024\t${i}\t${(rnd(51) / 10).toFixed(1)}\t${sentence()}\t${sentence()}`)
  writeFileSync(sts, pairs.join('\n') + '\n')

  const out = join(root, 'sts-run')
  // steps 0: the initial model is evaluated (at --max-len 8) and saved as the best.
  const run = await train({ config: 'tiny', data, out, steps: 0, maxLen: 8, evalFiles: [sts], evalEvery: 1, seed: 3 })
  t.ok(run.best, 'training evaluated the model')
  t.equal(JSON.parse(readFileSync(join(out, 'sentence_bert_config.json'), 'utf8')).max_seq_length, 8)
  const evaluated = cli(['eval', '--model', out, '--sts', sts, '--json', '--device', 'cpu'])
  t.equal(evaluated.status, 0, evaluated.stderr)
  const score = (JSON.parse(evaluated.stdout) as { average: number }).average
  const best = run.best as { spearman: number }
  t.ok(Math.abs(score - best.spearman) < 1e-3, `eval ${score} equals training's ${best.spearman}`)
  const at128 = cli(['eval', '--model', out, '--sts', sts, '--json', '--device', 'cpu', '--max-len', '128'])
  t.equal(at128.status, 0, at128.stderr)
  t.comment(`Spearman at --max-len 128: ${(JSON.parse(at128.stdout) as { average: number }).average}`)
})

t.test('encode --file reads sentences as train does: same errors, nothing written', async (t) => {
  const dir = await tinyModel('encode-file', 3)
  const write = (name: string, bytes: Buffer | string) => {
    const p = join(root, name)
    writeFileSync(p, bytes)
    return p
  }
  const badUtf8 = write('bad-utf8.txt', Buffer.concat([Buffer.from('the cat sat\nthe d'), Buffer.from([0xff]), Buffer.from('og sat\n')]))
  const crOnly = write('cr-only.txt', 'the cat sat\rthe dog sat\ra bird\r')
  for (const [what, file, message] of [
    ['invalid UTF-8', badUtf8, `${badUtf8}: invalid UTF-8 on line 2 (byte offset 17)`],
    ['CR-only line endings', crOnly, `${crOnly}: line 1 holds a carriage return (byte offset 11)`],
  ] as const) {
    const expected = await trainError(file)
    t.ok(expected.startsWith(message), `train: ${expected}`)
    const r = cli(['encode', '--model', dir, '--file', file])
    t.equal(r.status, 1, `${what}: encode fails`)
    t.equal(r.stderr, `simcsepp: ${expected}\n`, `${what}: with the error train gives`)
    t.equal(r.stdout, '', `${what}: no vectors written`)
  }

  const blank = write('blank.txt', 'the cat sat\n\na dog\n')
  const r = cli(['encode', '--model', dir, '--file', blank])
  t.equal(r.status, 1)
  t.equal(r.stderr, `simcsepp: ${blank}: line 2 is blank (one sentence per line is expected)\n`, 'a blank line is an error naming it')
  t.equal(r.stdout, '', 'and nothing is written before it')

  // \r\n endings and a byte-order mark: one vector per line, the sentences' own.
  const good = write('good.txt', '\ufeffthe cat sat\r\na dog\r\n')
  const ok = cli(['encode', '--model', dir, '--file', good])
  t.equal(ok.status, 0, ok.stderr)
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const expected = await enc.encode(['the cat sat', 'a dog'])
  await enc.close()
  // JSON prints each float32 as its shortest decimal: read back as float32, the vectors' own values.
  t.same(
    ok.stdout
      .trimEnd()
      .split('\n')
      .map((l) => (JSON.parse(l) as number[]).map(Math.fround)),
    expected.map((v) => Array.from(v)),
  )
})

t.test('STS files are decoded as sentence files are', async (t) => {
  const row = (a: string, b: string) => `g\tf\t2024\t1\t3.0\t${a}\t${b}`
  const bad = join(root, 'bad-sts.tsv')
  writeFileSync(
    bad,
    Buffer.concat([Buffer.from(`${row('the cat', 'a dog')}\n${row('a dog', '')}`), Buffer.from([0xc3, 0x28]), Buffer.from('at sat\n')]),
  )
  await t.rejects(readStsFile(bad), { message: new RegExp(`^${bad}: invalid UTF-8 on line 2 \\(byte offset \\d+\\)$`) })
  const mac = join(root, 'mac-sts.tsv')
  writeFileSync(mac, row('the cat', 'a dog') + '\r' + row('a bird', 'the tree') + '\r')
  await t.rejects(readStsFile(mac), { message: new RegExp(`^${mac}: line 1 holds a carriage return`) })
  const dos = join(root, 'dos-sts.tsv')
  writeFileSync(dos, '\ufeff' + row('the cat', 'a dog') + '\r\n' + row('a bird', 'the tree') + '\r\n')
  t.same(await readStsFile(dos), [
    { s1: 'the cat', s2: 'a dog', score: 3 },
    { s1: 'a bird', s2: 'the tree', score: 3 },
  ])
})

t.test('a config asking for an absurd model is a short RangeError in milliseconds, also through the encoder', async (t) => {
  const tiny = namedConfig('tiny', VOCAB.length)
  const absurd: [string, Record<string, number>][] = [
    ['a million layers', { numHiddenLayers: 1_000_000 }],
    ['hidden size 2^30', { hiddenSize: 2 ** 30 }],
  ]
  for (const [what, change] of absurd) {
    const t0 = performance.now()
    const e = (() => {
      try {
        BertModel.create({ ...tiny, ...change })
      } catch (e) {
        return e as Error
      }
    })()
    const ms = performance.now() - t0
    t.type(e, RangeError, `${what}: RangeError`)
    t.ok(e && e.message.length < 300, `${what}: short message (${e?.message.length} characters): ${e?.message}`)
    t.ok(ms < 1000, `${what}: thrown in ${ms.toFixed(1)} ms`)
  }

  const dir = await tinyModel('absurd', 4)
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>
  // Too big to hold: refused before the worker starts. 10000 layers would fit in memory but not in this
  // model.safetensors: refused by the worker's BertModel.load, before it allocates.
  for (const [what, change, message, limitMs] of [
    [
      'num_hidden_layers 1000000',
      { num_hidden_layers: 1_000_000 },
      /^SentenceEncoder: .*config\.json: the model .* has 1\.98e\+11 parameters, more than simcsepp can hold/,
      1000,
    ],
    ['hidden_size 2^30', { hidden_size: 2 ** 30 }, /^SentenceEncoder: .*config\.json: the model .* more than simcsepp can hold/, 1000],
    ['num_hidden_layers 10000', { num_hidden_layers: 10_000 }, /describes a model larger than .*model\.safetensors .* can hold/, 15_000],
  ] as const) {
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, ...change }))
    const t0 = performance.now()
    const e = await SentenceEncoder.load(dir, { device: 'cpu' }).then(
      async (enc) => {
        await enc.close()
        return null
      },
      (e: Error) => e,
    )
    const ms = performance.now() - t0
    t.match(e?.message, message, `${what}: rejected`)
    const text = e?.message.replaceAll(dir, '<dir>') ?? ''
    t.ok(text.length < 300, `${what}: short message (${text.length} characters without the path): ${text}`)
    t.ok(ms < limitMs, `${what}: in ${ms.toFixed(1)} ms`)
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config))
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.equal((await enc.encode('the cat')).length, 128, 'the process lives on: the restored model encodes')
  await enc.close()
})
