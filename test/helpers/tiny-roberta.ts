// A tiny random RoBERTa with its own byte-level BPE tokenizer.json (GPT-2's byte alphabet, merges
// that spell the test words, RobertaProcessing's <s> ... </s>), written here so no test needs ../shared.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BertModel } from '../../lib/model/bert.js'
import { tinyConfig, WORDS, writePoolingConfig } from './encoder-tiny-model.js'
import type { Pooling } from '../../lib/model/pooling.js'

const SPECIALS = ['<s>', '<pad>', '</s>', '<unk>']

/** GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for 256 + n. */
function byteAlphabet(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
  const out: string[] = []
  let n = 0
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(printable(b) ? b : 256 + n++)
  return out
}

/** tokenizer.json text: every byte is a token, and each test word (with and without a leading space) is merged whole. */
export function tinyByteLevelTokenizer(): { json: string; vocabSize: number } {
  const vocab: Record<string, number> = {}
  const add = (tok: string) => {
    if (!(tok in vocab)) vocab[tok] = Object.keys(vocab).length
  }
  SPECIALS.forEach(add)
  const bytes = byteAlphabet()
  bytes.forEach(add)
  const space = bytes[0x20]
  const merges: string[] = []
  for (const word of WORDS) {
    for (const start of [space, '']) {
      let left = start ? start : word[0]
      for (const ch of start ? word : word.slice(1)) {
        const merge = `${left} ${ch}`
        left += ch
        if (!merges.includes(merge)) merges.push(merge)
        add(left)
      }
    }
  }
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: true, add_prefix_space: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  }
  return { json: JSON.stringify(tokenizer), vocabSize: Object.keys(vocab).length }
}

/** Saves a random tiny RoBERTa (padding id 1, positions from 2) with its tokenizer.json; returns the directory. */
export async function saveTinyRoberta(options: { seed?: number; dir?: string; pooling?: Pooling } = {}): Promise<string> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'simcsepp-roberta-'))
  const { json, vocabSize } = tinyByteLevelTokenizer()
  const config = tinyConfig({ modelType: 'roberta', vocabSize, padTokenId: 1, typeVocabSize: 1, maxPositionEmbeddings: 66 })
  const model = BertModel.create(config, { seed: options.seed ?? 1 })
  await model.save(dir)
  model.dispose()
  writeFileSync(join(dir, 'tokenizer.json'), json)
  if (options.pooling) writePoolingConfig(dir, options.pooling)
  return dir
}
