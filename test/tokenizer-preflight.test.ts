// The parts of a tokenizer.json on which the tokenizers library aborts the process (lib/tokenizer-preflight.ts).
// SentencePiece Precompiled normalizers: a charsmap built here by hand (fullwidth Ａ -> A) loads and normalizes
// as the library reads it; charsmaps it would abort on (at load or while tokenizing) are refused by
// Tokenizer.load with an Error naming the file, and the process lives on. TemplateProcessing templates that
// name an undefined special token, alone or in a Sequence of processors, likewise.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Tokenizer } from '../lib/tokenizer.js'
import { precompiledCharsmapProblem } from '../lib/precompiled-charsmap.js'
import { tempDir } from './helpers/train-corpus.js'

const UNITS = 1024
const LEAF = 1 << 8

/** A double array mapping the bytes of `key` (3 bytes) to replacement string 0, with positions chosen by hand. */
function charsmap(key: number[], strings: string | Buffer, edit?: (units: Uint32Array) => void): string {
  const units = new Uint32Array(UNITS)
  const unit = (label: number, offset: number, leaf = false) => label | (leaf ? LEAF : 0) | (offset << 10)
  units[0] = unit(0, 256) // root: p0 = 256
  let p = 256
  const stops = [512, 768]
  key.forEach((c, i) => {
    const q = p ^ c
    const last = i === key.length - 1
    const next = last ? q ^ 1 : stops[i] // the leaf's value sits beside it
    units[q] = unit(c, q ^ next, last)
    p = next
  })
  units[p] = 0 // value: byte 0 of the strings
  edit?.(units)
  const text = typeof strings === 'string' ? Buffer.from(strings, 'utf8') : strings
  const blob = Buffer.alloc(4 + 4 * UNITS + text.length)
  blob.writeUInt32LE(4 * UNITS, 0)
  Buffer.from(units.buffer).copy(blob, 4)
  text.copy(blob, 4 + 4 * UNITS)
  return blob.toString('base64')
}

const FULLWIDTH_A = [0xef, 0xbc, 0xa1] // U+FF21

function tokenizerJson(precompiled: unknown): string {
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Precompiled', precompiled_charsmap: precompiled }] },
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: null,
    decoder: null,
    model: {
      type: 'Unigram',
      unk_id: 0,
      vocab: [
        ['<unk>', 0],
        ['<pad>', 0],
        ['▁A', -1],
        ['▁', -2],
      ],
      byte_fallback: false,
    },
  })
}

t.test('a valid charsmap: the library reads it, and Ａ is normalized to A', async (t) => {
  const map = charsmap(FULLWIDTH_A, 'A\0')
  t.equal(precompiledCharsmapProblem(map), null)
  const file = join(tempDir('simcsepp-charsmap-'), 'tokenizer.json')
  writeFileSync(file, tokenizerJson(map))
  const tok = await Tokenizer.load(file)
  const enc = await tok.encodeBatch(['Ａ', 'A'], { maxLength: 8 })
  t.same(Array.from(enc.inputIds), [2, 2], 'Ａ and A: the same token ▁A')
})

t.test('charsmaps the tokenizers library would abort on: refused with the reason, the process lives', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['null', null, /is null, not a base64 string/],
    ['not base64', 'a$b=', /is not base64/],
    ['too short', 'AAA=', /holds 2 bytes, fewer than its 4-byte trie size/],
    ['trie longer than the blob', Buffer.from([8, 0, 0, 0, 1, 2]).toString('base64'), /announces a 8-byte trie in 2 bytes/],
    ['strings not UTF-8', charsmap(FULLWIDTH_A, Buffer.from([0xff, 0])), /ends in replacement strings that are not UTF-8/],
    ['empty trie', Buffer.from([0, 0, 0, 0]).toString('base64'), /has an empty trie/],
    ['root outside the array', charsmap(FULLWIDTH_A, 'A\0', (u) => (u[0] = 4096 << 10)), /sends byte 1 to unit 4097 of 1024/],
    [
      'leaf value outside the strings',
      charsmap(FULLWIDTH_A, 'A\0', (u) => (u[768 ^ 0xa1 ^ 1] = 99)),
      /points at byte 99 of 2 replacement bytes/,
    ],
    ['leaf inside a character', charsmap(FULLWIDTH_A.slice(0, 2), 'A\0'), /replaces part of a character/],
    [
      'replacement index inside a character',
      charsmap(FULLWIDTH_A, 'é\0', (u) => (u[768 ^ 0xa1 ^ 1] = 1)),
      /points into a character at byte 1/,
    ],
  ]
  for (const [what, map, message] of cases) {
    t.match(precompiledCharsmapProblem(map), message, what)
    const file = join(tempDir('simcsepp-charsmap-bad-'), 'tokenizer.json')
    writeFileSync(file, tokenizerJson(map))
    await t.rejects(
      Tokenizer.load(file),
      new RegExp(`tokenizer\\.json: tokenizers could not load it \\(its Precompiled normalizer's precompiled_charsmap ${message.source}`),
      what,
    )
  }
  t.pass('still running')
})

t.test('TemplateProcessing naming a special token special_tokens lacks: refused, alone or in a Sequence', async (t) => {
  const template = (specialTokens: Record<string, unknown>) => ({
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }],
    special_tokens: specialTokens,
  })
  const s = { '<s>': { id: '<s>', ids: [1], tokens: ['<pad>'] } }
  const e = { '</s>': { id: '</s>', ids: [1], tokens: ['<pad>'] } }
  const write = (postProcessor: unknown) => {
    const file = join(tempDir('simcsepp-template-'), 'tokenizer.json')
    writeFileSync(file, JSON.stringify({ ...JSON.parse(tokenizerJson(charsmap(FULLWIDTH_A, 'A\0'))), post_processor: postProcessor }))
    return file
  }
  const refused =
    /tokenizer\.json: tokenizers could not load it \(its TemplateProcessing post-processor's (single|pair) template uses the special token "(<s>|<\/s>)", which special_tokens does not define\)/
  await t.rejects(Tokenizer.load(write(template({}))), refused, 'none defined')
  await t.rejects(Tokenizer.load(write(template(e))), /single template uses the special token "<s>"/, 'single')
  await t.rejects(Tokenizer.load(write(template(s))), /pair template uses the special token "<\/s>"/, 'pair')
  await t.rejects(
    Tokenizer.load(write({ type: 'Sequence', processors: [template(s)] })),
    /pair template uses the special token "<\/s>"/,
    'in a Sequence',
  )
  const ok = await Tokenizer.load(write(template({ ...s, ...e })))
  const enc = await ok.encodeBatch(['Ａ'], { maxLength: 8 })
  t.same(Array.from(enc.inputIds), [1, 2], 'both defined: loads, <s> (id 1) then ▁A')
})
