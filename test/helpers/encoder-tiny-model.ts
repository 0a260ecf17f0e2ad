// Tiny saved models for the SentenceEncoder tests: a random BERT and a small WordPiece vocab.txt
// written here, so no test needs ../shared.
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BertConfig } from '../../lib/model/config.js'
import { BertModel } from '../../lib/model/bert.js'
import { SentenceEncoder } from '../../lib/embed/sentence-encoder.js'
import { POOLING_CONFIG_KEYS, POOLINGS, type Pooling } from '../../lib/model/pooling.js'

export const WORDS = [
  'the',
  'a',
  'cat',
  'dog',
  'sat',
  'on',
  'mat',
  'sentence',
  'another',
  'one',
  'model',
  'runs',
  'fast',
  'slow',
  'and',
  'of',
  'in',
  'is',
  'was',
  'it',
  'big',
  'small',
  'red',
  'blue',
  'green',
  'house',
  'tree',
  'river',
]
const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('')
export const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', ',', ...WORDS, ...LETTERS, ...LETTERS.map((l) => `##${l}`)]

export function tinyConfig(overrides: Partial<BertConfig> = {}): BertConfig {
  return {
    modelType: 'bert',
    vocabSize: VOCAB.length,
    hiddenSize: 32,
    numHiddenLayers: 2,
    numAttentionHeads: 2,
    intermediateSize: 64,
    hiddenAct: 'gelu',
    hiddenDropoutProb: 0.1,
    attentionProbsDropoutProb: 0.1,
    maxPositionEmbeddings: 64,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
    padTokenId: 0,
    initializerRange: 0.2,
    ...overrides,
  }
}

/** Saves a random tiny BERT with a vocab.txt into a new temp dir (or `dir`) and returns it. */
export async function saveTinyModel(
  options: { seed?: number; dir?: string; config?: Partial<BertConfig>; pooling?: Pooling } = {},
): Promise<string> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'simcsepp-encoder-'))
  const model = BertModel.create(tinyConfig(options.config), { seed: options.seed ?? 1 })
  await model.save(dir)
  model.dispose()
  writeFileSync(join(dir, 'vocab.txt'), VOCAB.join('\n') + '\n')
  if (options.pooling) writePoolingConfig(dir, options.pooling)
  return dir
}

/** A sentence-transformers modules.json of Transformer, Pooling and Normalize (the chain of all-MiniLM, bge, e5). */
export function writeNormalizedModules(dir: string): void {
  writeFileSync(
    join(dir, 'modules.json'),
    JSON.stringify([
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
    ]),
  )
}

/** A sentence-transformers 1_Pooling/config.json asking for `pooling`. */
export function writePoolingConfig(dir: string, pooling: Pooling, dimension = 32): void {
  mkdirSync(join(dir, '1_Pooling'), { recursive: true })
  writeFileSync(
    join(dir, '1_Pooling', 'config.json'),
    JSON.stringify({
      word_embedding_dimension: dimension,
      ...Object.fromEntries(POOLINGS.map((mode) => [POOLING_CONFIG_KEYS[mode], pooling === mode])),
    }),
  )
}

/** Deterministic sentences of 1..maxWords words (some words split into letters by WordPiece). */
export function sentences(n: number, seed = 7, maxWords = 30): string[] {
  let s = seed >>> 0
  const rnd = (k: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s % k
  }
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const len = 1 + rnd(maxWords)
    const words: string[] = []
    for (let j = 0; j < len; j++)
      words.push(rnd(5) === 0 ? LETTERS[rnd(26)] + LETTERS[rnd(26)] + LETTERS[rnd(26)] : WORDS[rnd(WORDS.length)])
    out.push(words.join(' ') + (rnd(3) === 0 ? '.' : ''))
  }
  return out
}

/** Vectors of texts by a model directory, as SentenceEncoder gives them (fp32, CPU, no dropout). */
export async function modelVectors(model: string, texts: string[], options = {}): Promise<Float32Array[]> {
  const encoder = await SentenceEncoder.load(model, { device: 'cpu', precision: 'fp32', ...options })
  try {
    return (await encoder.encode(texts)) as Float32Array[]
  } finally {
    await encoder.close()
  }
}
