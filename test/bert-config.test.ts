import t from 'tap'
import { existsSync, promises as fsp } from 'node:fs'
import { join, resolve, dirname } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseHfConfig, toHfConfig, namedConfig, readHfConfig, positionOffset, type BertConfig } from '../lib/model/config.js'
import { parameterSpecs, canonicalName, matchCheckpoint } from '../lib/model/names.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const sharedData = resolve(repoRoot, '../shared/data')

const tinyConfig = join(sharedData, 'bert-tiny-config.json')
const noSharedData = existsSync(tinyConfig) ? false : `${tinyConfig} not found (../shared/data is absent outside the development checkout)`
if (noSharedData) t.comment(`skipping the real-config test: ${noSharedData}`)

t.test('the real bert-tiny config.json', { skip: noSharedData }, async (t) => {
  const file = tinyConfig
  const json = JSON.parse(await fsp.readFile(file, 'utf8'))
  const c = parseHfConfig(json, file)
  t.same(c, namedConfig('tiny'), 'bert-tiny is our "tiny" config')
  t.equal(positionOffset(c), 0)
})

t.test('toHfConfig -> parseHfConfig round trip', async (t) => {
  for (const name of ['tiny', 'mini', 'small', 'base'] as const) {
    const c = namedConfig(name, 1000)
    const hf = toHfConfig(c)
    t.same(parseHfConfig(JSON.parse(JSON.stringify(hf))), c, name)
    t.same(hf.architectures, ['BertModel'])
    t.equal(hf.model_type, 'bert')
    t.equal(hf.torch_dtype, 'float32')
    t.equal(hf.position_embedding_type, 'absolute')
    t.equal(hf.use_cache, true)
    t.equal(typeof hf.transformers_version, 'string')
    t.same(Object.keys(hf), [...Object.keys(hf)].sort(), 'keys sorted as transformers writes them')
  }
  const roberta: BertConfig = {
    ...namedConfig('tiny', 50265),
    modelType: 'roberta',
    padTokenId: 1,
    typeVocabSize: 1,
    maxPositionEmbeddings: 514,
    layerNormEps: 1e-5,
  }
  const hf = toHfConfig(roberta)
  t.same(hf.architectures, ['RobertaModel'])
  t.same(parseHfConfig(hf), roberta)
  t.equal(positionOffset(roberta), 2, 'roberta positions start at pad + 1')

  const dir = await fsp.mkdtemp(join(tmpdir(), 'simcsepp-cfg-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  await fsp.writeFile(join(dir, 'config.json'), JSON.stringify(hf))
  t.same(await readHfConfig(dir), roberta, 'readHfConfig')
  await t.rejects(readHfConfig(join(dir, 'nope')), /nope.config\.json: not found/)
  await fsp.writeFile(join(dir, 'config.json'), '{"model_type": ')
  await t.rejects(readHfConfig(dir), /config\.json: not valid JSON/)
  await fsp.writeFile(join(dir, 'config.json'), '[1]')
  await t.rejects(readHfConfig(dir), /config\.json: expected a JSON object/)
})

t.test('parseHfConfig defaults and errors name the field', async (t) => {
  const base = toHfConfig(namedConfig('tiny'))
  const minimal: Record<string, unknown> = {
    model_type: 'bert',
    vocab_size: 100,
    hidden_size: 64,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    intermediate_size: 128,
    max_position_embeddings: 64,
  }
  const c = parseHfConfig(minimal)
  t.equal(c.hiddenAct, 'gelu')
  t.equal(c.typeVocabSize, 2)
  t.equal(c.padTokenId, 0)
  t.equal(c.initializerRange, 0.02, 'initializer_range defaults to 0.02')
  t.equal(c.layerNormEps, 1e-12)
  t.equal(parseHfConfig({ ...minimal, model_type: 'roberta' }).padTokenId, 1)

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['model_type', { model_type: 'gpt2' }, /"model_type".*"gpt2"/],
    ['model_type missing', { model_type: undefined }, /"model_type" is missing/],
    ['hidden_act', { hidden_act: 'relu' }, /"hidden_act" must be "gelu".*"relu"/],
    ['gelu_new', { hidden_act: 'gelu_new' }, /"hidden_act"/],
    ['gelu_python', { hidden_act: 'gelu_python' }, /"hidden_act"/],
    ['heads', { num_attention_heads: 3 }, /"num_attention_heads" \(3\) must divide hidden_size \(128\)/],
    ['hidden_size type', { hidden_size: '128' }, /"hidden_size" must be an integer/],
    ['hidden_size missing', { hidden_size: undefined }, /"hidden_size" is missing/],
    ['layers', { num_hidden_layers: 0 }, /"num_hidden_layers" must be at least 1, got 0/],
    ['intermediate', { intermediate_size: 1.5 }, /"intermediate_size" must be an integer/],
    ['vocab', { vocab_size: -1 }, /"vocab_size"/],
    ['dropout', { hidden_dropout_prob: 1 }, /"hidden_dropout_prob" must be in \[0, 1\)/],
    ['attn dropout', { attention_probs_dropout_prob: 'x' }, /"attention_probs_dropout_prob" must be a number/],
    ['eps', { layer_norm_eps: 0 }, /"layer_norm_eps" must be positive/],
    ['init', { initializer_range: -0.02 }, /"initializer_range" must be positive/],
    ['pad', { pad_token_id: 30522 }, /"pad_token_id" \(30522\) must be below vocab_size/],
    ['position type', { position_embedding_type: 'relative_key' }, /"position_embedding_type"/],
    ['type vocab', { type_vocab_size: 0 }, /"type_vocab_size"/],
    ['max positions', { max_position_embeddings: null }, /"max_position_embeddings" must be an integer/],
  ]
  for (const [what, patch, re] of bad) {
    t.throws(() => parseHfConfig({ ...base, ...patch }, 'my/config.json'), re, what)
    t.throws(() => parseHfConfig({ ...base, ...patch }, 'my/config.json'), /^my\/config\.json: /, `${what} names the file`)
  }
  t.throws(
    () => parseHfConfig({ ...base, model_type: 'roberta', pad_token_id: 1, max_position_embeddings: 2 }),
    /"max_position_embeddings"/,
  )
  t.throws(() => parseHfConfig(null), /expected a JSON object, got null/)
  t.throws(() => parseHfConfig([base]), /got an array/)
})

t.test('named configs', async (t) => {
  const sizes = { tiny: [2, 128, 2, 512], mini: [4, 256, 4, 1024], small: [4, 512, 8, 2048], base: [12, 768, 12, 3072] }
  for (const [name, [L, H, A, I]] of Object.entries(sizes)) {
    const c = namedConfig(name as keyof typeof sizes)
    t.same([c.numHiddenLayers, c.hiddenSize, c.numAttentionHeads, c.intermediateSize], [L, H, A, I], name)
    t.same(
      [
        c.modelType,
        c.vocabSize,
        c.maxPositionEmbeddings,
        c.typeVocabSize,
        c.hiddenDropoutProb,
        c.attentionProbsDropoutProb,
        c.layerNormEps,
        c.padTokenId,
        c.initializerRange,
      ],
      ['bert', 30522, 512, 2, 0.1, 0.1, 1e-12, 0, 0.02],
    )
  }
  t.equal(namedConfig('tiny', 1234).vocabSize, 1234)
  t.throws(() => namedConfig('huge' as 'tiny'), /unknown name "huge"/)
})

t.test('parameterSpecs for tiny', async (t) => {
  const c = namedConfig('tiny')
  const specs = parameterSpecs(c)
  t.equal(specs.length, 5 + 16 * c.numHiddenLayers + 2)
  t.equal(parameterSpecs(c, { pooler: false }).length, 5 + 16 * c.numHiddenLayers)
  const by = new Map(specs.map((s) => [s.name, s]))
  t.equal(specs[0]!.name, 'embeddings.word_embeddings.weight')
  t.same(by.get('embeddings.word_embeddings.weight')!.shape, [30522, 128])
  t.same(by.get('embeddings.position_embeddings.weight')!.shape, [512, 128])
  t.same(by.get('embeddings.token_type_embeddings.weight')!.shape, [2, 128])
  t.equal(by.get('embeddings.LayerNorm.bias')!.kind, 'layernorm')
  t.same(by.get('encoder.layer.1.attention.self.value.weight')!.shape, [128, 128])
  t.equal(by.get('encoder.layer.1.attention.self.value.weight')!.kind, 'weight')
  t.same(by.get('encoder.layer.0.intermediate.dense.weight')!.shape, [512, 128])
  t.same(by.get('encoder.layer.0.intermediate.dense.bias')!.shape, [512])
  t.equal(by.get('encoder.layer.0.intermediate.dense.bias')!.kind, 'bias')
  t.same(by.get('encoder.layer.0.output.dense.weight')!.shape, [128, 512])
  t.same(by.get('encoder.layer.1.output.LayerNorm.weight')!.shape, [128])
  t.equal(specs.at(-1)!.name, 'pooler.dense.bias')
  t.same(
    specs.slice(5, 21).map((s) => s.name.replace('encoder.layer.0.', '')),
    [
      'attention.self.query.weight',
      'attention.self.query.bias',
      'attention.self.key.weight',
      'attention.self.key.bias',
      'attention.self.value.weight',
      'attention.self.value.bias',
      'attention.output.dense.weight',
      'attention.output.dense.bias',
      'attention.output.LayerNorm.weight',
      'attention.output.LayerNorm.bias',
      'intermediate.dense.weight',
      'intermediate.dense.bias',
      'output.dense.weight',
      'output.dense.bias',
      'output.LayerNorm.weight',
      'output.LayerNorm.bias',
    ],
    'layer order as in BertModel.state_dict()',
  )
  const total = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)
  t.equal(total, 4385920, 'bert-tiny has 4,385,920 parameters with the pooler')
})

t.test('canonicalName', async (t) => {
  t.equal(canonicalName('bert.embeddings.word_embeddings.weight', 'bert'), 'embeddings.word_embeddings.weight')
  t.equal(canonicalName('roberta.encoder.layer.0.output.dense.bias', 'roberta'), 'encoder.layer.0.output.dense.bias')
  t.equal(canonicalName('encoder.layer.3.attention.output.LayerNorm.gamma', 'bert'), 'encoder.layer.3.attention.output.LayerNorm.weight')
  t.equal(canonicalName('bert.embeddings.LayerNorm.beta', 'bert'), 'embeddings.LayerNorm.bias')
  t.equal(canonicalName('pooler.dense.weight', 'bert'), 'pooler.dense.weight')
  t.equal(canonicalName('cls.predictions.bias', 'bert'), null)
  t.equal(canonicalName('cls.predictions.transform.LayerNorm.gamma', 'bert'), null)
  t.equal(canonicalName('lm_head.dense.weight', 'roberta'), null)
  t.equal(canonicalName('bert.embeddings.position_ids', 'bert'), null)
  t.equal(canonicalName('embeddings.position_ids', 'roberta'), null)
  t.equal(canonicalName('classifier.weight', 'bert'), null)
})

t.test('matchCheckpoint', async (t) => {
  const c = namedConfig('tiny', 100)
  const specs = parameterSpecs(c)
  const full = new Map(specs.map((s) => [`bert.${s.name}`, { shape: s.shape }]))
  full.set('bert.embeddings.position_ids', { shape: [1, 512] })
  full.set('cls.predictions.bias', { shape: [100] })
  const ok = matchCheckpoint(specs, full)
  t.equal(ok.mapping.size, specs.length)
  t.equal(ok.mapping.get('embeddings.word_embeddings.weight'), 'bert.embeddings.word_embeddings.weight')
  t.same(ok.warnings, [])
  t.same(ok.ignored.sort(), ['bert.embeddings.position_ids', 'cls.predictions.bias'])

  const noPooler = new Map([...full].filter(([k]) => !k.includes('pooler')))
  const np = matchCheckpoint(specs, noPooler)
  t.equal(np.warnings.length, 2)
  t.match(np.warnings[0], /pooler\.dense\.weight is missing/)
  t.throws(
    () => matchCheckpoint(specs, noPooler, { allowMissingPooler: false }),
    /missing \(2\): pooler\.dense\.weight, pooler\.dense\.bias/,
  )

  const broken = new Map(full)
  broken.delete('bert.encoder.layer.1.output.dense.bias')
  broken.delete('bert.embeddings.LayerNorm.weight')
  broken.set('bert.encoder.layer.2.output.dense.bias', { shape: [128] })
  broken.set('bert.embeddings.word_embeddings.weight', { shape: [101, 128] })
  broken.set('bert.encoder.layer.0.intermediate.dense.weight', { shape: [128, 512] })
  broken.set('embeddings.token_type_embeddings.weight', { shape: [2, 128] })
  let err: Error | undefined
  try {
    matchCheckpoint(specs, broken, { source: 'model.safetensors' })
  } catch (e) {
    err = e as Error
  }
  t.ok(err instanceof Error, 'one Error')
  const msg = err!.message
  t.match(msg, /^model\.safetensors does not match the bert model/)
  t.match(msg, /missing \(2\): embeddings\.LayerNorm\.weight, encoder\.layer\.1\.output\.dense\.bias/)
  t.match(msg, /unexpected \(1\): bert\.encoder\.layer\.2\.output\.dense\.bias/)
  t.match(msg, /duplicated \(1\): embeddings\.token_type_embeddings\.weight/)
  t.match(msg, /bert\.embeddings\.word_embeddings\.weight: \[101, 128\] in the checkpoint, expected \[100, 128\]/)
  t.match(msg, /bert\.encoder\.layer\.0\.intermediate\.dense\.weight: \[128, 512\] in the checkpoint, expected \[512, 128\]/)

  // RoBERTa checkpoints with old gamma/beta names.
  const r: BertConfig = { ...c, modelType: 'roberta', typeVocabSize: 1, padTokenId: 1 }
  const rspecs = parameterSpecs(r)
  const rmap = new Map(
    rspecs.map((s) => [
      `roberta.${s.name.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta')}`,
      { shape: s.shape },
    ]),
  )
  rmap.set('lm_head.bias', { shape: [100] })
  const rm = matchCheckpoint(rspecs, rmap, { modelType: 'roberta' })
  t.equal(rm.mapping.get('embeddings.LayerNorm.weight'), 'roberta.embeddings.LayerNorm.gamma')
  t.same(rspecs.find((s) => s.name === 'embeddings.token_type_embeddings.weight')!.shape, [1, 128])
})
