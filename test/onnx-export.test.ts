// exportOnnx: the exported graph, run by onnxruntime-node and by transformers.js's feature-extraction
// pipeline (local files only), gives SentenceEncoder's vectors within 1e-4 (fp32 weights) for tiny random
// BERT and RoBERTa models; transformers.js tokenizes the test sentences as we do; bad input is refused.
import t from 'tap'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { SentenceEncoder } from '../lib/index.js'
import { BertModel, type Pooling } from '../lib/model/bert.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { saveTinyModel, sentences, VOCAB, writePoolingConfig } from './helpers/encoder-tiny-model.js'
import { saveTinyRoberta } from './helpers/tiny-roberta.js'
import { tempDir } from './helpers/train-corpus.js'
import { ortRun } from './helpers/onnx-run.js'

/**
 * The odd batches: one sentence; lengths from 1 token to exactly MAX_LENGTH; one sentence of exactly
 * MAX_LENGTH tokens (22 one-token words, [CLS] and [SEP] / <s> and </s>, for both tokenizers).
 */
const MAX_LENGTH = 24
const words = (n: number) => Array.from({ length: n }, (_, i) => ['the', 'cat', 'sat', 'on', 'a', 'mat'][i % 6]).join(' ')
const EXACT = words(22)
const LONG = words(40)
const BATCHES: [string, string[]][] = [
  ['batch of 1', ['the cat sat on the mat.']],
  ['very different lengths (1 word to max length)', ['a', EXACT, 'the dog', ...sentences(5, 11, 4)]],
  ['one sentence at max length', [EXACT]],
]

/** Largest |a - b| / max(1, |b|) over all entries, and the largest |a - b|. */
function errors(a: ArrayLike<number>[], b: ArrayLike<number>[]): { rel: number; abs: number } {
  let rel = 0,
    abs = 0
  for (let i = 0; i < a.length; i++)
    for (let j = 0; j < a[i].length; j++) {
      const d = Math.abs(a[i][j] - b[i][j])
      abs = Math.max(abs, d)
      rel = Math.max(rel, d / Math.max(1, Math.abs(b[i][j])))
    }
  return { rel, abs }
}

function rows(data: ArrayLike<number>, n: number, h: number): Float32Array[] {
  return Array.from({ length: n }, (_, i) => Float32Array.from(Array.prototype.slice.call(data, i * h, (i + 1) * h) as number[]))
}

interface Case {
  name: string
  make: (dir: string) => Promise<string>
  pooling: Pooling
  normalize: boolean
}

const CASES: Case[] = [
  { name: 'BERT, mean pooling', make: (dir) => saveTinyModel({ dir, pooling: 'mean', seed: 3 }), pooling: 'mean', normalize: false },
  {
    name: 'BERT, cls pooling, normalised',
    make: (dir) => saveTinyModel({ dir, pooling: 'cls', seed: 4 }),
    pooling: 'cls',
    normalize: true,
  },
  { name: 'RoBERTa, mean pooling', make: (dir) => saveTinyRoberta({ dir, pooling: 'mean', seed: 5 }), pooling: 'mean', normalize: false },
  // transformers.js's pipeline has no max or mean_sqrt_len pooling: onnxruntime alone checks these.
  { name: 'BERT, max pooling', make: (dir) => saveTinyModel({ dir, pooling: 'max', seed: 6 }), pooling: 'max', normalize: false },
  {
    name: 'RoBERTa, mean_sqrt_len pooling, normalised',
    make: (dir) => saveTinyRoberta({ dir, pooling: 'mean_sqrt_len', seed: 7 }),
    pooling: 'mean_sqrt_len',
    normalize: true,
  },
]

for (const c of CASES) {
  t.test(`${c.name}: onnxruntime-node and transformers.js give SentenceEncoder's vectors`, async (t) => {
    const model = await c.make(tempDir('simcsepp-onnx-model-'))
    const out = join(tempDir('simcsepp-onnx-out-'), 'exported')
    const r = await exportOnnx(model, out, { normalize: c.normalize, maxLength: MAX_LENGTH })
    t.equal(r.pooling, c.pooling, "the directory's pooling")
    t.ok(existsSync(join(out, 'onnx', 'model.onnx')) && existsSync(join(out, 'tokenizer.json')) && existsSync(join(out, 'config.json')))
    const tokenizerConfig = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'))
    t.equal(tokenizerConfig.model_max_length, MAX_LENGTH)
    // vocab.txt alone means an uncased BERT tokenizer (as transformers reads it); RoBERTa has no such flag.
    t.equal(tokenizerConfig.do_lower_case, c.name.startsWith('BERT') ? true : undefined, 'do_lower_case says what tokenizer.json does')
    const enc = await SentenceEncoder.load(model, { device: 'cpu', normalize: c.normalize, maxLength: MAX_LENGTH })
    t.teardown(() => enc.close())
    const bert = await BertModel.load(model)
    t.teardown(() => bert.dispose())
    const H = enc.dimension

    const { env, pipeline, AutoTokenizer } = await import('@huggingface/transformers')
    env.allowRemoteModels = false
    env.allowLocalModels = true
    env.localModelPath = dirname(out)
    const extractor = await pipeline('feature-extraction', basename(out), { dtype: 'fp32' })
    t.teardown(() => extractor.dispose())
    const jsTokenizer = await AutoTokenizer.from_pretrained(basename(out))

    for (const [what, texts] of BATCHES) {
      const want = await enc.encode(texts)
      const { out: o, enc: batch } = await ortRun(r.onnxFile, model, texts, r.inputs, MAX_LENGTH)
      const [B, T] = batch.shape
      if (texts.includes(EXACT)) t.equal(T, MAX_LENGTH, `${what}: the longest sentence fills maxLength exactly`)
      t.same(o.sentence_embedding.dims, [B, H])
      t.same(o.last_hidden_state.dims, [B, T, H])
      const ortErr = errors(rows(o.sentence_embedding.data as Float32Array, B, H), want)
      t.ok(
        ortErr.rel < 1e-4,
        `${what}: onnxruntime sentence_embedding within 1e-4 (max abs ${ortErr.abs.toExponential(2)}, rel ${ortErr.rel.toExponential(2)})`,
      )

      // last_hidden_state on real tokens against BertModel.forward on the same padded batch.
      const hidden = bert.forward(batch)
      const ref = hidden.toFloat32Array()
      hidden.dispose()
      const got = o.last_hidden_state.data as Float32Array
      let worst = 0
      for (let i = 0; i < B * T; i++)
        if (batch.attentionMask[i])
          for (let k = 0; k < H; k++)
            worst = Math.max(worst, Math.abs(got[i * H + k] - ref[i * H + k]) / Math.max(1, Math.abs(ref[i * H + k])))
      t.ok(worst < 1e-4, `${what}: last_hidden_state on real tokens within 1e-4 (${worst.toExponential(2)})`)

      // transformers.js: its tokenizer's ids equal ours, and its pipeline's pooled vectors equal ours.
      const jsIds = jsTokenizer(texts, { padding: true, truncation: true }).input_ids.tolist() as bigint[][]
      t.same(
        jsIds.map((row) => row.map(Number)),
        rows(batch.inputIds, B, T).map((row) => Array.from(row)),
        `${what}: transformers.js tokenizes as we do`,
      )
      if (c.pooling !== 'cls' && c.pooling !== 'mean') continue
      const js = await extractor(texts, { pooling: c.pooling, normalize: c.normalize })
      const jsErr = errors(rows(js.data as Float32Array, B, H), want)
      t.ok(
        jsErr.rel < 1e-4,
        `${what}: transformers.js pipeline within 1e-4 (max abs ${jsErr.abs.toExponential(2)}, rel ${jsErr.rel.toExponential(2)})`,
      )
    }

    // Longer than maxLength: onnxruntime on our tokens still gives the encoder's vector, but transformers.js
    // truncates after adding the special tokens, so its last token is a word where ours is [SEP] / </s>.
    const [wantLong] = await enc.encode([LONG])
    const { out: o, enc: batch } = await ortRun(r.onnxFile, model, [LONG], r.inputs, MAX_LENGTH)
    t.ok(
      errors([o.sentence_embedding.data as Float32Array], [wantLong]).rel < 1e-4,
      'over maxLength: onnxruntime on our tokens within 1e-4',
    )
    const ours = Array.from(batch.inputIds)
    const full = await (await Tokenizer.load(model)).encodeBatch([LONG], { maxLength: 60 })
    const theirs = (jsTokenizer([LONG], { padding: true, truncation: true }).input_ids.tolist() as bigint[][])[0].map(Number)
    t.same(
      theirs,
      [...ours.slice(0, -1), full.inputIds[MAX_LENGTH - 1]],
      "over maxLength: transformers.js's last token is the next word, not the separator",
    )
  })
}

t.test('fp16 weights: onnx/model_fp16.onnx, about half the size, its measured error', async (t) => {
  const model = await saveTinyModel({
    dir: tempDir('simcsepp-onnx-model-'),
    pooling: 'mean',
    seed: 6,
    config: { hiddenSize: 64, intermediateSize: 256 },
  })
  const root = tempDir('simcsepp-onnx-out-')
  const fp32 = await exportOnnx(model, join(root, 'fp32'), { maxLength: MAX_LENGTH })
  const fp16 = await exportOnnx(model, join(root, 'fp16'), { maxLength: MAX_LENGTH, weights: 'fp16' })
  t.equal(basename(fp16.onnxFile), 'model_fp16.onnx')
  const ratio = fp16.bytes / fp32.bytes
  t.ok(ratio > 0.45 && ratio < 0.55, `fp16 file is ${(100 * ratio).toFixed(1)}% of the fp32 one`)
  const enc = await SentenceEncoder.load(model, { device: 'cpu', maxLength: MAX_LENGTH })
  t.teardown(() => enc.close())
  const texts = BATCHES[1][1]
  const want = await enc.encode(texts)
  const { out } = await ortRun(fp16.onnxFile, model, texts, fp16.inputs, MAX_LENGTH)
  const err = errors(rows(out.sentence_embedding.data as Float32Array, texts.length, enc.dimension), want)
  // Weights rounded to 11 significant bits (relative error up to 2^-12 each): here the vectors move by
  // about 2e-3, far more than fp32's 1e-6 (so the weights really are fp16), and stay within 1e-2.
  t.ok(err.rel > 1e-5 && err.rel < 1e-2, `fp16 weights: max abs error ${err.abs.toExponential(2)}, rel ${err.rel.toExponential(2)}`)

  const { env, pipeline } = await import('@huggingface/transformers')
  env.allowRemoteModels = false
  env.localModelPath = root
  const extractor = await pipeline('feature-extraction', 'fp16', { dtype: 'fp16' })
  t.teardown(() => extractor.dispose())
  const js = await extractor(texts, { pooling: 'mean', normalize: false })
  const jsErr = errors(
    rows(js.data as Float32Array, texts.length, enc.dimension),
    rows(out.sentence_embedding.data as Float32Array, texts.length, enc.dimension),
  )
  t.ok(jsErr.rel < 1e-5, `transformers.js (dtype fp16) runs model_fp16.onnx as onnxruntime does (${jsErr.rel.toExponential(2)})`)
})

t.test('bad input: a clear Error naming what is wrong, and an existing folder is never overwritten silently', async (t) => {
  const model = await saveTinyModel({ dir: tempDir('simcsepp-onnx-model-') })
  const missing = join(tmpdir(), 'simcsepp-no-such-model-dir')
  await t.rejects(
    exportOnnx(missing, join(tempDir('simcsepp-onnx-out-'), 'x')),
    /exportOnnx: .*simcsepp-no-such-model-dir: no such model directory/,
  )
  await t.rejects(exportOnnx(undefined as unknown as string, 'x'), /exportOnnx: expected a model directory path, got undefined/)
  await t.rejects(exportOnnx(model, ''), /exportOnnx: expected an output folder path, got ""/)
  const notModel = tempDir('simcsepp-onnx-empty-')
  await t.rejects(
    exportOnnx(notModel, join(tempDir('simcsepp-onnx-out-'), 'x')),
    /is not a model directory: missing config\.json, model\.safetensors/,
  )
  await t.rejects(
    exportOnnx(model, join(tempDir('simcsepp-onnx-out-'), 'x'), { pooling: 'lasttoken' as 'cls' }),
    /pooling must be cls, mean, max or mean_sqrt_len, got "lasttoken"/,
  )
  await t.rejects(
    exportOnnx(model, join(tempDir('simcsepp-onnx-out-'), 'x'), { weights: 'int8' as 'fp16' }),
    /weights must be 'fp32', 'fp16' or 'q8' \(or a list of them\), got "int8"/,
  )
  await t.rejects(
    exportOnnx(model, join(tempDir('simcsepp-onnx-out-'), 'x'), { weights: 'toString' as 'fp16' }),
    /weights must be 'fp32', 'fp16' or 'q8' \(or a list of them\), got "toString"/,
  )
  await t.rejects(
    exportOnnx(model, join(tempDir('simcsepp-onnx-out-'), 'x'), { weights: ['fp16', 'q4'] as 'fp16'[] }),
    /weights must be 'fp32', 'fp16' or 'q8' \(or a list of them\), got \["fp16","q4"\]/,
  )
  for (const weights of [[], ['q8', 'q8']] as const)
    await t.rejects(
      exportOnnx(model, join(tempDir('simcsepp-onnx-out-'), 'x'), { weights }),
      /weights must list each storage at most once and at least one/,
    )
  await t.rejects(exportOnnx(model, join(tempDir('simcsepp-onnx-out-'), 'x'), { maxLen: 3 } as object), /unknown option 'maxLen'/)
  await t.rejects(exportOnnx(model, join(tempDir('simcsepp-onnx-out-'), 'x'), { maxLength: 2 }), /maxLength must be an integer >= 3/)

  const out = tempDir('simcsepp-onnx-out-')
  writeFileSync(join(out, 'notes.txt'), 'mine')
  await t.rejects(exportOnnx(model, out), /already holds files \(notes\.txt\): choose another folder or pass --overwrite/)
  t.same(readdirSync(out), ['notes.txt'], 'nothing written')
  const r = await exportOnnx(model, out, { overwrite: true })
  t.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine', '--overwrite replaces our files only')
  t.ok(existsSync(r.onnxFile))
  const file = join(out, 'notes.txt')
  await t.rejects(exportOnnx(model, file), /is a file, not a directory/)
})

t.test("sentence-transformers settings: an older layout's pooling, Normalize, max_seq_length and do_lower_case", async (t) => {
  // A cased tokenizer (do_lower_case false) under sentence_bert_config's do_lower_case true: the encoder
  // lowercases before tokenizing, and the export puts a Lowercase normalizer in front of tokenizer.json's.
  const dir = tempDir('simcsepp-onnx-st-')
  await saveTinyModel({ dir: join(dir, '0_BERT'), seed: 8 })
  writeFileSync(join(dir, '0_BERT', 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false }))
  writeFileSync(join(dir, '0_BERT', 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 20, do_lower_case: true }))
  writeFileSync(
    join(dir, 'modules.json'),
    JSON.stringify([
      { path: '0_BERT', type: 'sentence_transformers.models.BERT' },
      { path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      { path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
    ]),
  )
  writePoolingConfig(dir, 'mean')
  const out = join(tempDir('simcsepp-onnx-out-'), 'st')
  const r = await exportOnnx(dir, out)
  t.same({ pooling: r.pooling, normalize: r.normalize, maxLength: r.maxLength }, { pooling: 'mean', normalize: true, maxLength: 20 })
  t.equal(JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')).do_lower_case, false, 'the cased tokenizer stays cased')

  const texts = ['The Cat SAT on the Mat', 'A big RED house', 'the river']
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.teardown(() => enc.close())
  const want = await enc.encode(texts)
  const { env, pipeline } = await import('@huggingface/transformers')
  env.allowRemoteModels = false
  env.localModelPath = dirname(out)
  const extractor = await pipeline('feature-extraction', basename(out), { dtype: 'fp32' })
  t.teardown(() => extractor.dispose())
  const ids = (extractor.tokenizer(texts[0]).input_ids.tolist() as bigint[][])[0].map(Number)
  const lowered = await (await Tokenizer.load(join(dir, '0_BERT'))).encodeBatch([texts[0].toLowerCase()])
  t.same(ids, Array.from(lowered.inputIds), 'transformers.js tokenizes the cased text as ours lowercased')
  t.notOk(ids.includes(VOCAB.indexOf('[UNK]')), 'no [UNK]: the capitals were lowercased')
  const js = await extractor(texts, { pooling: 'mean', normalize: true })
  const err = errors(rows(js.data as Float32Array, texts.length, enc.dimension), want)
  t.ok(err.rel < 1e-4, `transformers.js on cased text within 1e-4 of SentenceEncoder (${err.rel.toExponential(2)})`)
  const session = await ort.InferenceSession.create(r.onnxFile)
  t.teardown(() => session.release())
  t.same(session.inputNames, ['input_ids', 'attention_mask', 'token_type_ids'])
  t.same(session.outputNames, ['last_hidden_state', 'sentence_embedding'])
})
