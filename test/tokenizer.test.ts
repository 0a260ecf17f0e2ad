import t, { type Test } from 'tap'
import { existsSync, promises as fsp } from 'node:fs'
import { join, resolve, dirname } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Tokenizer, type EncodedBatch } from '../lib/tokenizer.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const sharedData = resolve(repoRoot, '../shared/data')
const bertDir = join(sharedData, 'bert-base-uncased')

const tmp = await fsp.mkdtemp(join(tmpdir(), 'simcsepp-tok-'))
t.teardown(() => fsp.rm(tmp, { recursive: true, force: true }))

function rows(b: EncodedBatch, which: 'inputIds' | 'attentionMask' | 'tokenTypeIds' = 'inputIds'): number[][] {
  const [B, T] = b.shape
  return Array.from({ length: B }, (_, i) => [...b[which].subarray(i * T, (i + 1) * T)])
}

/** Checks the layout every batch must have: [CLS] ... [SEP] then padding, mask 1 exactly on real tokens. */
function checkLayout(t: Test, b: EncodedBatch, cls: number, sep: number, pad: number, maxLength: number) {
  const [B, T] = b.shape
  t.ok(T <= maxLength, `T=${T} <= maxLength ${maxLength}`)
  t.equal(b.inputIds.length, B * T)
  let bad = 0
  const ids = rows(b)
  const mask = rows(b, 'attentionMask')
  let longest = 0
  for (let i = 0; i < B; i++) {
    const n = mask[i]!.reduce((a, x) => a + x, 0)
    longest = Math.max(longest, n)
    if (ids[i]![0] !== cls || ids[i]![n - 1] !== sep) bad++
    if (mask[i]!.some((m, j) => m !== (j < n ? 1 : 0))) bad++
    if (ids[i]!.slice(n).some((x) => x !== pad)) bad++
    if (ids[i]!.slice(1, n - 1).some((x) => x === cls || x === pad)) bad++
  }
  t.equal(bad, 0, 'rows are [CLS] tokens [SEP] then padding, mask 1 on real tokens only')
  t.equal(longest, T, 'padded to the longest row')
  t.ok(
    b.tokenTypeIds.every((x) => x === 0),
    'token type ids are 0',
  )
}

t.test('tiny vocab written by the test', async (t) => {
  const dir = join(tmp, 'tiny')
  await fsp.mkdir(dir)
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'hello', 'world', '##s', 'the', 'cat', '.', ',']
  await fsp.writeFile(join(dir, 'vocab.txt'), vocab.join('\n') + '\n')
  const tok = await Tokenizer.load(dir)
  t.equal(tok.vocabSize, vocab.length)
  t.equal(tok.padTokenId, 0)
  t.equal(tok.tokenToId('[CLS]'), 2)

  const b = await tok.encodeBatch(['Hello worlds, the cat.', 'the dog', 'HÉLLO'], { maxLength: 16 })
  t.same(b.shape, [3, 9])
  t.same(rows(b), [
    [2, 5, 6, 7, 11, 8, 9, 10, 3],
    [2, 8, 1, 3, 0, 0, 0, 0, 0],
    [2, 5, 3, 0, 0, 0, 0, 0, 0],
  ])
  t.same(rows(b, 'attentionMask')[1], [1, 1, 1, 1, 0, 0, 0, 0, 0])
  checkLayout(t, b, 2, 3, 0, 16)

  const short = await tok.encodeBatch(['hello world hello world hello'], { maxLength: 4 })
  t.same(rows(short), [[2, 5, 6, 3]], 'truncated to maxLength with [SEP] kept')
  t.same(rows(await tok.encodeBatch(['hello [MASK] cat'])), [[2, 5, 4, 9, 3]], '[MASK] in text is one token')
  t.same((await tok.encodeBatch([])).shape, [0, 0], 'empty batch')
  t.same(rows(await tok.encodeBatch([''])), [[2, 3]], 'empty sentence')
  t.equal(await tok.decode([2, 5, 6, 7, 3]), 'hello worlds')

  // Concurrent calls with different maxLength must not see each other's truncation.
  const long = Array(40).fill('hello').join(' ')
  const [a8, a20, a8b] = await Promise.all([
    tok.encodeBatch([long], { maxLength: 8 }),
    tok.encodeBatch([long], { maxLength: 20 }),
    tok.encodeBatch([long], { maxLength: 8 }),
  ])
  t.same(
    [a8.shape, a20.shape, a8b.shape],
    [
      [1, 8],
      [1, 20],
      [1, 8],
    ],
  )

  await t.rejects(tok.encodeBatch(['x'], { maxLength: 2 }), /maxLength must be an integer above the 2 special tokens, got 2/)
  await t.rejects(tok.encodeBatch(['x'], { maxLength: 3.5 }), /maxLength/)
  await t.rejects(tok.encodeBatch(['x', 5 as unknown as string]), /sentences\[1\] is number/)

  // save -> load gives the same ids, through tokenizer.json and through vocab.txt.
  const saved = join(tmp, 'tiny-saved')
  await tok.save(saved)
  t.same((await fsp.readFile(join(saved, 'vocab.txt'), 'utf8')).split('\n').slice(0, -1), vocab)
  const cfg = JSON.parse(await fsp.readFile(join(saved, 'tokenizer_config.json'), 'utf8'))
  t.equal(cfg.do_lower_case, true)
  const savedJson = JSON.parse(await fsp.readFile(join(saved, 'tokenizer.json'), 'utf8'))
  t.equal(savedJson.truncation, null, 'saved file carries no truncation')
  const sentences = ['Hello worlds, the cat.', 'the dog', 'HÉLLO [MASK]']
  const ref = rows(await tok.encodeBatch(sentences))
  const viaJson = await Tokenizer.load(saved)
  t.same(rows(await viaJson.encodeBatch(sentences)), ref, 'reloaded tokenizer.json')
  const viaVocab = await Tokenizer.load(join(saved, 'vocab.txt'))
  t.same(rows(await viaVocab.encodeBatch(sentences)), ref, 'reloaded vocab.txt')
  // A tokenizer loaded from tokenizer.json derives vocab.txt from its WordPiece vocabulary.
  const saved2 = join(tmp, 'tiny-saved2')
  await viaJson.save(saved2)
  t.same((await fsp.readFile(join(saved2, 'vocab.txt'), 'utf8')).split('\n').slice(0, -1), vocab)

  // do_lower_case false in tokenizer_config.json.
  const cased = join(tmp, 'cased')
  await fsp.mkdir(cased)
  await fsp.writeFile(join(cased, 'vocab.txt'), vocab.join('\n') + '\n')
  await fsp.writeFile(join(cased, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false }))
  const ct = await Tokenizer.load(cased)
  t.same(rows(await ct.encodeBatch(['Hello hello'])), [[2, 1, 5, 3]], 'cased vocab keeps Hello unknown')
})

t.test('load errors', async (t) => {
  await t.rejects(Tokenizer.load(join(tmp, 'does-not-exist')), /does-not-exist: tokenizer path not found/)
  const empty = join(tmp, 'empty')
  await fsp.mkdir(empty)
  await t.rejects(Tokenizer.load(empty), /no tokenizer\.json or vocab\.txt/)
  await fsp.writeFile(join(empty, 'tokenizer.json'), '{"model": ')
  await t.rejects(Tokenizer.load(empty), /tokenizer\.json: not valid JSON/)
  await fsp.writeFile(join(empty, 'tokenizer.json'), '{"model": {"type": "Nope"}}')
  await t.rejects(Tokenizer.load(empty), /tokenizer\.json: tokenizers could not load it/)
  const noCls = join(tmp, 'nocls')
  await fsp.mkdir(noCls)
  await fsp.writeFile(join(noCls, 'vocab.txt'), '[PAD]\n[UNK]\n[SEP]\nhello\n')
  await t.rejects(Tokenizer.load(noCls), /vocab\.txt: the vocabulary has no cls token \[CLS\]/)
  await fsp.writeFile(join(noCls, 'vocab.bin'), '')
  await t.rejects(Tokenizer.load(join(noCls, 'vocab.bin')), /expected a directory, a tokenizer\.json or a vocab\.txt/)
})

const noSharedData =
  existsSync(join(bertDir, 'tokenizer.json')) && existsSync(join(bertDir, 'vocab.txt'))
    ? false
    : `${bertDir} not found (../shared/data is absent outside the development checkout)`
if (noSharedData) t.comment(`skipping the bert-base-uncased test: ${noSharedData}`)

t.test('bert-base-uncased: tokenizer.json and vocab.txt give the same ids', { skip: noSharedData }, async (t) => {
  const viaJson = await Tokenizer.load(bertDir)
  const viaVocab = await Tokenizer.load(join(bertDir, 'vocab.txt'))
  t.match(viaJson.sourceFile, /tokenizer\.json$/, 'a directory prefers tokenizer.json')
  for (const tok of [viaJson, viaVocab]) {
    t.equal(tok.vocabSize, 30522)
    t.equal(tok.padTokenId, 0)
    t.equal(tok.tokenToId('[CLS]'), 101)
    t.equal(tok.tokenToId('[SEP]'), 102)
  }
  const hw = await viaJson.encodeBatch(['Hello, world!'])
  t.same(rows(hw), [[101, 7592, 1010, 2088, 999, 102]])

  const wiki = (await fsp.readFile(join(sharedData, 'wiki1m-head.txt'), 'utf8')).split('\n').slice(0, 200)
  const sts = (await fsp.readFile(join(sharedData, 'stsb-dev.tsv'), 'utf8'))
    .split('\n')
    .filter((l) => l)
    .slice(0, 150)
    .flatMap((l) => l.split('\t').slice(5, 7))
  const crafted = [
    'Café résumé naïve Ångström façade São Paulo Zürich',
    '我爱北京天安门 and 東京 is in 日本; 한국어 too',
    'Punctuation!!! (brackets) [square] {curly} — em-dash – en-dash ... "double" \'single\' $100.50 #hash @at 50% a/b c\\d',
    'Control\u0000chars\u200b zero\u00adwidth \ttabs\nand\r\nnewlines   multiple   spaces',
    'Emoji 😀👍🏽 and symbols ™ © ® ° ± × ÷ ∞ ≠',
    'a [MASK] token and a [SEP] in the text',
    '',
    '   ',
    'supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis',
    Array.from({ length: 60 }, (_, i) => `word${i}`).join(' '),
    'x'.repeat(150),
  ]
  const all = [...wiki, ...sts, ...crafted]
  t.ok(all.length > 500, `${all.length} sentences`)

  let truncated = 0
  for (const maxLength of [32, 512]) {
    let mismatches = 0
    for (let i = 0; i < all.length; i += 64) {
      const batch = all.slice(i, i + 64)
      const a = await viaJson.encodeBatch(batch, { maxLength })
      const b = await viaVocab.encodeBatch(batch, { maxLength })
      checkLayout(t, a, 101, 102, 0, maxLength)
      if (
        JSON.stringify([a.shape, [...a.inputIds], [...a.attentionMask]]) !==
        JSON.stringify([b.shape, [...b.inputIds], [...b.attentionMask]])
      ) {
        mismatches++
        t.same(rows(b), rows(a), `batch at ${i} differs`)
      }
      if (maxLength === 32) truncated += rows(a, 'attentionMask').filter((m) => m[31] === 1).length
    }
    t.equal(mismatches, 0, `maxLength ${maxLength}: same ids for ${all.length} sentences`)
  }
  t.ok(truncated > 10, `${truncated} sentences reach the 32-token limit`)

  const c = await viaJson.encodeBatch(crafted, { maxLength: 64 })
  const r = rows(c)
  t.same(r[0]!.slice(0, 4), [101, 7668, 13746, 15743], 'accents stripped: cafe resume naive')
  t.same(
    r[1]!.slice(1, 8),
    ['我', '爱', '北', '京', '天', '安', '门'].map((ch) => viaJson.tokenToId(ch) ?? 100),
    'Chinese characters one token each ([UNK] when not in the vocab)',
  )
  t.same(r[5]!.slice(0, 4), [101, 1037, 103, 19204], '[MASK] in text stays one token')
  t.same(
    r[6]!.filter((x) => x !== 0),
    [101, 102],
    'empty sentence is [CLS] [SEP]',
  )
  t.equal(r[10]!.filter((x) => x !== 0).length, 3, 'a 150-char word is one [UNK]')
  t.equal(r[10]![1], 100)
  t.equal(await viaJson.decode(r[0]!), 'cafe resume naive angstrom facade sao paulo zurich')
})
