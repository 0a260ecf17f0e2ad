// sentence-transformers folders of both layouts: the current one (Transformer module at path "", the
// model files at the top) and the older one (sentence-transformers < 1.0: models.BERT / models.RoBERTa
// in 0_BERT/ with its own sentence_bert_config.json), with Pooling configs of both generations and a
// Normalize module. The same weights give the same vectors from either folder, and training writes
// the current layout, which reads back with the settings it was trained with.
import t from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SentenceEncoder } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { readSentenceTransformersConfig } from '../lib/embed/sentence-transformers-config.js'
import { writeSentenceTransformersFiles } from '../lib/train/sentence-transformers.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'

const dirs: string[] = []
t.teardown(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'simcsepp-st-layout-'))
  dirs.push(d)
  return d
}
const writeJson = (file: string, v: unknown) => writeFileSync(file, JSON.stringify(v, null, 2))

/** Pooling config as sentence-transformers >= 3 saves it. */
const currentPooling = (mode: 'cls' | 'mean') => ({
  word_embedding_dimension: 32,
  pooling_mode_cls_token: mode === 'cls',
  pooling_mode_mean_tokens: mode === 'mean',
  pooling_mode_max_tokens: false,
  pooling_mode_mean_sqrt_len_tokens: false,
  pooling_mode_weightedmean_tokens: false,
  pooling_mode_lasttoken: false,
  include_prompt: true,
})
/** Pooling config as sentence-transformers 0.x saved it (four modes, nothing else). */
const olderPooling = (mode: 'cls' | 'mean') => ({
  word_embedding_dimension: 32,
  pooling_mode_cls_token: mode === 'cls',
  pooling_mode_mean_tokens: mode === 'mean',
  pooling_mode_max_tokens: false,
  pooling_mode_mean_sqrt_len_tokens: false,
})

interface Layout {
  seed: number
  pooling: 'cls' | 'mean'
  maxSeqLength: number
  lowercase: boolean
  normalize: boolean
}

/** The tiny model with a cased tokenizer, so that only sentence_bert_config.json's do_lower_case lowercases. */
async function casedModel(seed: number, dir: string): Promise<string> {
  await saveTinyModel({ seed, dir })
  writeJson(join(dir, 'tokenizer_config.json'), { do_lower_case: false })
  return dir
}

async function currentLayout(l: Layout): Promise<string> {
  const dir = await casedModel(l.seed, tmp())
  writeJson(join(dir, 'modules.json'), [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ...(l.normalize ? [{ idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' }] : []),
  ])
  writeJson(join(dir, 'sentence_bert_config.json'), { max_seq_length: l.maxSeqLength, do_lower_case: l.lowercase })
  mkdirSync(join(dir, '1_Pooling'))
  writeJson(join(dir, '1_Pooling', 'config.json'), currentPooling(l.pooling))
  return dir
}

async function olderLayout(l: Layout, arch: 'BERT' | 'RoBERTa'): Promise<string> {
  const dir = tmp()
  const module = `0_${arch}`
  await casedModel(l.seed, join(dir, module))
  writeJson(join(dir, 'modules.json'), [
    { path: module, type: `sentence_transformers.models.${arch}`, name: '0' },
    { path: '1_Pooling', type: 'sentence_transformers.models.Pooling', name: '1' },
    ...(l.normalize ? [{ path: '2_Normalize', type: 'sentence_transformers.models.Normalize', name: '2' }] : []),
  ])
  const configName = arch === 'BERT' ? 'sentence_bert_config.json' : 'sentence_roberta_config.json'
  writeJson(join(dir, module, configName), { max_seq_length: l.maxSeqLength, do_lower_case: l.lowercase })
  mkdirSync(join(dir, '1_Pooling'))
  writeJson(join(dir, '1_Pooling', 'config.json'), olderPooling(l.pooling))
  if (l.normalize) mkdirSync(join(dir, '2_Normalize'))
  return dir
}

const texts = [...sentences(24, 11, 30), 'The Cat SAT on the Mat', 'A big RED house']

for (const [name, layout] of [
  ['mean, normalised, lowercase, 24 tokens', { seed: 3, pooling: 'mean', maxSeqLength: 24, lowercase: true, normalize: true }],
  ['cls, not normalised, cased, 40 tokens', { seed: 4, pooling: 'cls', maxSeqLength: 40, lowercase: false, normalize: false }],
] as [string, Layout][]) {
  t.test(`both layouts load the same settings and vectors: ${name}`, async (t) => {
    const current = await currentLayout(layout)
    const ref = await SentenceEncoder.load(current, { device: 'cpu' })
    const refVectors = await ref.encode(texts)
    await ref.close()
    for (const [label, dir] of [
      ['current layout', current],
      ['older layout, models.BERT in 0_BERT/', await olderLayout(layout, 'BERT')],
      ['older layout, models.RoBERTa in 0_RoBERTa/', await olderLayout(layout, 'RoBERTa')],
    ] as const) {
      const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
      t.same(
        { pooling: enc.pooling, maxLength: enc.maxLength, normalize: enc.normalize, lowercase: enc.lowercase, dimension: enc.dimension },
        {
          pooling: layout.pooling,
          maxLength: layout.maxSeqLength,
          normalize: layout.normalize,
          lowercase: layout.lowercase,
          dimension: 32,
        },
        `${label}: settings`,
      )
      t.equal(enc.dir, dir, `${label}: encoder.dir is the folder given`)
      const got = await enc.encode(texts)
      t.ok(
        got.every((v, i) => v.length === 32 && v.every((x, j) => x === refVectors[i][j])),
        `${label}: vectors equal the current-layout folder's exactly`,
      )
      const norms = got.map((v) => Math.hypot(...v))
      if (layout.normalize)
        t.ok(
          norms.every((n) => Math.abs(n - 1) < 1e-5),
          `${label}: unit-length vectors`,
        )
      else
        t.ok(
          norms.some((n) => Math.abs(n - 1) > 0.01),
          `${label}: vectors keep their length`,
        )
      const [upper, lower] = await enc.encode(['The Cat SAT on the Mat', 'the cat sat on the mat'])
      t.equal(
        upper.every((x, j) => x === lower[j]),
        layout.lowercase,
        `${label}: do_lower_case ${layout.lowercase} ${layout.lowercase ? 'lowercases' : 'keeps the case'}`,
      )
      await enc.close()
    }
  })
}

t.test('an older-layout folder gives the vectors of the model inside it', async (t) => {
  const layout: Layout = { seed: 5, pooling: 'mean', maxSeqLength: 64, lowercase: false, normalize: false }
  const dir = await olderLayout(layout, 'BERT')
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  const got = await enc.encode(texts.slice(0, 6), { sortByLength: false, batchSize: 6 })
  await enc.close()
  const model = await BertModel.load(join(dir, '0_BERT'))
  const tok = await Tokenizer.load(join(dir, '0_BERT'))
  const t32 = model.embed(await tok.encodeBatch(texts.slice(0, 6), { maxLength: 64 }), 'mean')
  const out = t32.toFloat32Array()
  t32.dispose()
  model.dispose()
  const H = 32
  let diff = 0
  for (let i = 0; i < 6; i++) for (let j = 0; j < H; j++) diff = Math.max(diff, Math.abs(got[i][j] - out[i * H + j]))
  t.ok(diff <= 1e-5, `equal to BertModel.embed of 0_BERT/ (max |diff| ${diff.toExponential(1)})`)
})

t.test('module folder errors name modules.json or the folder', async (t) => {
  const layout: Layout = { seed: 6, pooling: 'cls', maxSeqLength: 32, lowercase: false, normalize: false }
  const dir = await olderLayout(layout, 'BERT')
  rmSync(join(dir, '0_BERT', 'model.safetensors'))
  await t.rejects(
    SentenceEncoder.load(dir, { device: 'cpu' }),
    /0_BERT is not a model directory \(the Transformer module in .*modules\.json\): missing model\.safetensors \(or pytorch_model\.bin\)/,
  )
  rmSync(join(dir, '0_BERT'), { recursive: true })
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), /modules\.json: the Transformer module's folder "0_BERT" is not in /)
  writeJson(join(dir, 'modules.json'), [{ path: '../elsewhere', type: 'sentence_transformers.models.BERT' }])
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), /modules\.json: module path "\.\.\/elsewhere" leaves /)
  writeJson(join(dir, 'modules.json'), { modules: [] })
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), /modules\.json: expected a JSON array of modules/)
})

t.test('the written layout is the current one and reads back', async (t) => {
  for (const pooling of ['cls', 'mean'] as const) {
    const dir = tmp()
    await writeSentenceTransformersFiles(dir, 32, 48, pooling)
    const modules = JSON.parse(readFileSync(join(dir, 'modules.json'), 'utf8'))
    t.same(
      modules.map((m: { type: string; path: string }) => [m.type, m.path]),
      [
        ['sentence_transformers.models.Transformer', ''],
        ['sentence_transformers.models.Pooling', '1_Pooling'],
      ],
      'Transformer at the top, then Pooling; no Normalize (training compares vectors by cosine, unnormalised)',
    )
    const st = await readSentenceTransformersConfig(dir)
    t.same(
      {
        pooling: st.pooling,
        normalize: st.normalize,
        maxSeqLength: st.maxSeqLength,
        doLowerCase: st.doLowerCase,
        transformerDir: st.transformerDir,
      },
      { pooling, normalize: false, maxSeqLength: 48, doLowerCase: false, transformerDir: dir },
      `${pooling}: read back`,
    )
  }
})

t.test('training from an older-layout --model folder loads the transformer in 0_BERT/', async (t) => {
  const { createModel, loadTokenizer } = await import('../lib/train/setup.js')
  const layout: Layout = { seed: 8, pooling: 'cls', maxSeqLength: 32, lowercase: false, normalize: false }
  const dir = await olderLayout(layout, 'BERT')
  const o = { model: dir, seed: 1, precision: 'fp32' } as unknown as Parameters<typeof createModel>[0]
  const { tokenizer } = await loadTokenizer(o, { count: 0, readLines: async () => [] }, null, () => {})
  t.equal(tokenizer.vocabSize, (await Tokenizer.load(join(dir, '0_BERT'))).vocabSize, "the tokenizer is 0_BERT/'s")
  const model = await createModel(o, tokenizer, 'cpu')
  const ref = await BertModel.load(join(dir, '0_BERT'), { mlp: true, seed: 1 })
  t.equal(model.layout.total, ref.layout.total, 'same parameter count')
  const a = model.params.toFloat32Array(),
    b = ref.params.toFloat32Array()
  t.ok(
    b.every((x, i) => a[i] === x),
    "the encoder's parameters are 0_BERT/'s",
  )
  model.dispose()
  ref.dispose()
})

t.test('sentence-transformers >= 5: no max_seq_length in sentence_bert_config.json, the tokenizer model_max_length', async (t) => {
  const dir = tmp()
  await saveTinyModel({ seed: 2, dir })
  writeJson(join(dir, 'sentence_bert_config.json'), { transformer_task: 'feature-extraction', module_output_name: 'token_embeddings' })
  writeJson(join(dir, 'tokenizer_config.json'), { tokenizer_class: 'BertTokenizer', model_max_length: 16, do_lower_case: true })
  t.equal((await readSentenceTransformersConfig(dir)).maxSeqLength, 16, "the tokenizer's model_max_length")
  writeJson(join(dir, 'tokenizer_config.json'), { tokenizer_class: 'BertTokenizer', model_max_length: 1e30 })
  t.equal((await readSentenceTransformersConfig(dir)).maxSeqLength, undefined, "transformers' 1e30 (no limit) is no length")
  writeJson(join(dir, 'sentence_bert_config.json'), { max_seq_length: 12 })
  writeJson(join(dir, 'tokenizer_config.json'), { tokenizer_class: 'BertTokenizer', model_max_length: 16 })
  t.equal((await readSentenceTransformersConfig(dir)).maxSeqLength, 12, 'max_seq_length, where given, wins')
  rmSync(join(dir, 'sentence_bert_config.json'))
  t.equal(
    (await readSentenceTransformersConfig(dir)).maxSeqLength,
    undefined,
    'a plain Hugging Face folder: not read (SentenceEncoder takes 128)',
  )
})
