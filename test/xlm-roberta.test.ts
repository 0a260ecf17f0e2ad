// XLM-RoBERTa (config.json model_type "xlm-roberta": RoBERTa's architecture, a SentencePiece Unigram vocabulary):
// read as RoBERTa, written back as XLM-R (model_type, XLMRobertaModel), tokenized with its tokenizer.json, trained
// a step, and exported so that transformers.js loads it as XLMRobertaModel and gives SentenceEncoder's vectors.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { SentenceEncoder } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { hfTokenizerClass, parseHfConfig, toHfConfig } from '../lib/model/config.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { train } from '../lib/train/train.js'
import { tinyConfig, WORDS } from './helpers/encoder-tiny-model.js'
import { tempDir } from './helpers/train-corpus.js'

const SPECIALS = ['<s>', '<pad>', '</s>', '<unk>']
const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('')

/** A SentencePiece-style Unigram tokenizer.json: ▁word pieces for the test words, letters as a fallback. */
function tinyUnigramTokenizer(): { json: string; vocabSize: number } {
  const vocab: [string, number][] = [
    ...SPECIALS.map((s): [string, number] => [s, 0]),
    ...WORDS.map((w, i): [string, number] => [`▁${w}`, -2 - i / 100]),
    ['▁', -3],
    ...LETTERS.map((l): [string, number] => [l, -5]),
    ['<mask>', 0],
  ]
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...SPECIALS, '<mask>'].map((content) => ({
      id: vocab.findIndex(([p]) => p === content),
      content,
      single_word: false,
      lstrip: content === '<mask>',
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: {
        '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] },
        '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] },
      },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 3, vocab, byte_fallback: false },
  }
  return { json: JSON.stringify(tokenizer), vocabSize: vocab.length }
}

async function saveTinyXlmr(dir: string): Promise<string> {
  const { json, vocabSize } = tinyUnigramTokenizer()
  const config = tinyConfig({
    modelType: 'roberta',
    hfModelType: 'xlm-roberta',
    vocabSize,
    padTokenId: 1,
    typeVocabSize: 1,
    maxPositionEmbeddings: 66,
  })
  const model = BertModel.create(config, { seed: 31 })
  await model.save(dir)
  model.dispose()
  writeFileSync(join(dir, 'tokenizer.json'), json)
  return dir
}

t.test('config.json: "xlm-roberta" reads as RoBERTa and writes back as XLM-R', async (t) => {
  const hf = toHfConfig(tinyConfig({ modelType: 'roberta', hfModelType: 'xlm-roberta', padTokenId: 1, typeVocabSize: 1 }))
  t.equal(hf.model_type, 'xlm-roberta')
  t.same(hf.architectures, ['XLMRobertaModel'])
  const back = parseHfConfig(hf)
  t.equal(back.modelType, 'roberta', "RoBERTa's architecture: positions after the padding index, one token type")
  t.equal(back.hfModelType, 'xlm-roberta')
  t.same(toHfConfig(back), hf, 'round trip')
  t.equal(parseHfConfig({ ...hf, model_type: 'roberta' }).hfModelType, undefined, 'plain RoBERTa has none')
  t.throws(
    () => parseHfConfig({ ...hf, model_type: 'deberta-v2' }),
    /field "model_type" must be "bert", "roberta", "distilbert", "mpnet", "modernbert", "xlm-roberta", "camembert", got "deberta-v2"/,
  )
})

t.test('config.json: "camembert" reads as RoBERTa and writes back as CamemBERT', async (t) => {
  const c = tinyConfig({ modelType: 'roberta', hfModelType: 'camembert', padTokenId: 1, typeVocabSize: 1 })
  const hf = toHfConfig(c)
  t.same([hf.model_type, hf.architectures], ['camembert', ['CamembertModel']])
  const back = parseHfConfig(hf)
  t.same([back.modelType, back.hfModelType], ['roberta', 'camembert'])
  t.same(toHfConfig(back), hf, 'round trip')
  t.equal(hfTokenizerClass(back), 'CamembertTokenizer')
})

t.test('a tiny XLM-R: its Unigram tokenizer, a training step, an export transformers.js runs as XLMRobertaModel', async (t) => {
  const model = await saveTinyXlmr(tempDir('simcsepp-xlmr-'))
  t.equal(JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')).model_type, 'xlm-roberta', 'saved as XLM-R')
  const tok = await Tokenizer.load(model)
  const enc = await tok.encodeBatch(['the cat', 'zq'], { maxLength: 16 })
  const ids = (w: string) => 4 + WORDS.indexOf(w)
  t.same(Array.from(enc.inputIds.subarray(0, 4)), [0, ids('the'), ids('cat'), 2], '<s> ▁the ▁cat </s>')
  const z = 4 + WORDS.length + 1 + LETTERS.indexOf('z')
  t.same(Array.from(enc.inputIds.subarray(enc.shape[1], enc.shape[1] + 5)), [
    0,
    4 + WORDS.length,
    z,
    z + ('q'.charCodeAt(0) - 'z'.charCodeAt(0)),
    2,
  ])

  // One training step from it: the saved model is still XLM-R.
  const data = join(tempDir('simcsepp-xlmr-data-'), 'data.txt')
  writeFileSync(
    data,
    Array.from({ length: 8 }, (_, i) => `${WORDS[i]} ${WORDS[(i * 5) % WORDS.length]} ${WORDS[(i * 3) % WORDS.length]}`).join('\n') + '\n',
  )
  const out = join(tempDir('simcsepp-xlmr-run-'), 'run')
  await train({ model, data, out, steps: 1, batchSize: 4, maxLen: 8, evalEvery: 0 })
  const trained = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))
  t.same([trained.model_type, trained.architectures], ['xlm-roberta', ['XLMRobertaModel']], 'the trained model keeps its model_type')

  const exported = join(tempDir('simcsepp-xlmr-onnx-'), 'xlmr')
  const r = await exportOnnx(out, exported, { pooling: 'mean', maxLength: 16 })
  t.same(r.inputs, ['input_ids', 'attention_mask'], 'no token types, as RoBERTa')
  t.equal(JSON.parse(readFileSync(join(exported, 'tokenizer_config.json'), 'utf8')).tokenizer_class, 'XLMRobertaTokenizer')
  const texts = ['the cat sat', 'a', 'zq the mat on']
  const encoder = await SentenceEncoder.load(out, { device: 'cpu', pooling: 'mean', maxLength: 16 })
  t.teardown(() => encoder.close())
  const want = await encoder.encode(texts)
  const { env, pipeline, AutoTokenizer } = await import('@huggingface/transformers')
  env.allowRemoteModels = false
  env.localModelPath = dirname(exported)
  const jsTok = await AutoTokenizer.from_pretrained(basename(exported))
  const ours = await (await Tokenizer.load(out)).encodeBatch(texts, { maxLength: 16 })
  t.same(
    (jsTok(texts, { padding: true, truncation: true }).input_ids.tolist() as bigint[][]).flat().map(Number),
    Array.from(ours.inputIds),
    'transformers.js tokenizes as we do',
  )
  const extractor = await pipeline('feature-extraction', basename(exported), { dtype: 'fp32' })
  t.teardown(() => extractor.dispose())
  t.equal(extractor.model.config.model_type, 'xlm-roberta')
  const js = (await extractor(texts, { pooling: 'mean', normalize: false })).tolist() as number[][]
  let worst = 0
  for (let i = 0; i < texts.length; i++) for (let k = 0; k < want[i].length; k++) worst = Math.max(worst, Math.abs(js[i][k] - want[i][k]))
  t.ok(worst < 1e-4, `transformers.js vectors within ${worst.toExponential(2)} of SentenceEncoder's`)
})
