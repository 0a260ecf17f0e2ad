// Supervised SimCSE (issue 14): pairs and triplets from CSV/TSV (RFC 4180 quoting) and JSONL, the
// format detected and never read as raw lines, the objective chosen from the data (others refused),
// the step's loss equal to losses.simcse with hard negatives on the same vectors, and resume.
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseDelimited } from '../lib/data/csv.js'
import { detectFormat, PairFile } from '../lib/data/pairs.js'
import { BatchStream } from '../lib/data/sentences.js'
import { train } from '../lib/train/train.js'
import * as losses from '../lib/losses.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { tempDir, TINY_RUN, WORDS } from './helpers/train-corpus.js'
import { checkMicroBatches, supervisedStep } from './helpers/supervised-step.js'

const dir = tempDir('simcsepp-supervised-')
const write = (name: string, text: string) => {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

/** `count` triplets of the small grammar: a sentence, a reordering of it, and an unrelated one. */
function triplets(count: number, seed = 3): string[][] {
  let s = seed
  const rnd = (n: number) => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % n
  const sentence = () => Array.from({ length: 4 + rnd(5) }, () => WORDS[rnd(WORDS.length)]).join(' ')
  return Array.from({ length: count }, () => {
    const a = sentence()
    return [a, a.split(' ').reverse().join(' '), sentence()]
  })
}
const csvField = (f: string) => (/[",\n]/.test(f) ? `"${f.replace(/"/g, '""')}"` : f)
const rows = triplets(40)
const csv = write('nli.csv', ['sent0,sent1,hard_neg', ...rows.map((r) => r.map(csvField).join(','))].join('\n') + '\n')

t.test('CSV: quoted delimiters, doubled quotes, line breaks and \\r\\n endings', async (t) => {
  const text = 'sent0,sent1\r\n"a, b","say ""hi"""\r\n"two\nlines",plain\n\nlast,"x"'
  const recs = parseDelimited(text, ',', 'f.csv')
  t.same(
    recs.map((r) => r.fields),
    [
      ['sent0', 'sent1'],
      ['a, b', 'say "hi"'],
      ['two\nlines', 'plain'],
      ['last', 'x'],
    ],
  )
  t.same(
    recs.map((r) => r.line),
    [1, 2, 3, 6],
    'each record names the line it starts on',
  )
  t.same(parseDelimited('a\tb "c"\n', '\t', 'f.tsv')[0].fields, ['a', 'b "c"'], 'a quote inside an unquoted field is text')
  t.same(parseDelimited('a,""\n', ',', 'f.csv')[0].fields, ['a', ''], 'an empty quoted field')
  t.throws(() => parseDelimited('a,b\n"open,c\n', ',', 'f.csv'), /f\.csv: line 2: a quoted field is never closed/)
  t.throws(() => parseDelimited('"a"b,c\n', ',', 'f.csv'), /f\.csv: line 1: text after a closing quote/)
})

t.test('the format: by extension, by the first line, or as given', async (t) => {
  t.equal(await detectFormat(csv), 'csv')
  t.equal(await detectFormat(write('x.tsv', 'a\tb\n')), 'tsv')
  t.equal(await detectFormat(write('x.jsonl', '{}\n')), 'jsonl')
  t.equal(await detectFormat(write('csv.txt', '"sent0",sent1\na,b\n')), 'csv', 'a .txt whose first line names the columns')
  t.equal(await detectFormat(write('tsv.txt', 'anchor\tpositive\tnegative\na\tb\tc\n')), 'tsv')
  t.equal(await detectFormat(write('json.txt', '{"anchor": "a", "positive": "b"}\n')), 'jsonl')
  t.equal(await detectFormat(write('plain.txt', 'the cat, the dog\nsent0 is a word\n')), 'text')
  t.equal(await detectFormat(csv, 'text'), 'text', '--format decides')
  t.equal(await detectFormat(join(dir, 'missing.txt')), 'text', 'the text reader names a missing file')
})

t.test('PairFile: the header is never a sentence; CSV, TSV and both JSONL key sets read the same examples', async (t) => {
  const pairs = rows.slice(0, 5)
  const files = [
    await PairFile.open(csv, 'csv'),
    await PairFile.open(write('p.tsv', ['hard_neg\tsent0\tsent1', ...rows.map((r) => [r[2], r[0], r[1]].join('\t'))].join('\n')), 'tsv'),
    await PairFile.open(
      write('p.jsonl', rows.map(([anchor, positive, negative]) => JSON.stringify({ anchor, positive, negative })).join('\n') + '\n'),
      'jsonl',
    ),
    await PairFile.open(
      write('p2.jsonl', rows.map(([sent0, sent1, hard_neg]) => JSON.stringify({ hard_neg, sent0, sent1 })).join('\r\n')),
      'jsonl',
    ),
  ]
  for (const f of files) {
    t.equal(f.count, 40, `${f.path}: 40 examples`)
    t.equal(f.width, 3)
    const cols = await f.readColumns([0, 1, 2, 3, 4])
    t.same(
      cols,
      [0, 1, 2].map((c) => pairs.map((r) => r[c])),
      `${f.path}: anchors, positives, negatives in the order asked`,
    )
    const all = (await f.readColumns(Array.from({ length: 40 }, (_, i) => i))).flat()
    t.notOk(all.includes('sent0') || all.includes('hard_neg') || all.includes('anchor'), 'no column name became a sentence')
  }
  const two = await PairFile.open(write('pairs.csv', 'sent0,sent1\n"a, with comma","b\nspanning lines"\nc,d\n'), 'csv')
  t.equal(two.width, 2)
  t.same(await two.readColumns([0, 1]), [
    ['a, with comma', 'c'],
    ['b\nspanning lines', 'd'],
  ])
  t.match(two.describe(), /2 pairs \(anchor, positive\), read as csv/)

  const errors: [string, string, RegExp][] = [
    [
      'nohead.csv',
      'the cat,the dog\n',
      /nohead\.csv: the first line must name the columns sent0,sent1\[,hard_neg\] or anchor,positive\[,negative\]/,
    ],
    ['fields.csv', 'sent0,sent1\na,b\nc,d,e\n', /fields\.csv: line 3: 3 fields, the header has 2/],
    ['empty.csv', 'sent0,sent1\na,b\n"",d\n', /empty\.csv: line 3: an empty sentence/],
    ['only.csv', 'sent0,sent1\n', /only\.csv: no examples after the header/],
    ['keys.jsonl', '{"anchor":"a","positive":"b"}\n{"anchor":"a","text":"b"}\n', /keys\.jsonl: line 2: expected the keys/],
    [
      'mixed.jsonl',
      '{"anchor":"a","positive":"b"}\n{"anchor":"a","positive":"b","negative":"c"}\n',
      /mixed\.jsonl: line 2: keys .* but the first example has/,
    ],
    ['notjson.jsonl', '{"anchor":"a","positive":"b"}\nthe cat\n', /notjson\.jsonl: line 2 is not JSON/],
    ['num.jsonl', '{"anchor":"a","positive":3}\n', /num\.jsonl: line 1: anchor, positive must be strings/],
  ]
  for (const [name, text, error] of errors)
    await t.rejects(PairFile.open(write(name, text), name.endsWith('.csv') ? 'csv' : 'jsonl'), error, name)
})

t.test('BatchStream over pairs: every example once per epoch, its columns together', async (t) => {
  const f = await PairFile.open(csv, 'csv')
  const stream = new BatchStream(f, { batchSize: 16, seed: 4 })
  const seen: string[] = []
  for (let b = 0; b < 3; b++) {
    const { sentences, columns } = await stream.next()
    t.equal(columns!.length, 3)
    t.same(columns![0], sentences, 'the anchors are the sentences')
    for (let i = 0; i < sentences.length; i++) {
      const row = rows.find((r) => r[0] === sentences[i])!
      t.same([columns![1][i], columns![2][i]], [row[1], row[2]], 'positive and negative of the same example')
    }
    seen.push(...sentences)
  }
  t.equal(new Set(seen).size, new Set(rows.map((r) => r[0])).size, 'one epoch covers every example')
})

t.test("the supervised step's loss is losses.simcse with hard negatives on the same vectors", async (t) => {
  const batch = rows.slice(0, 12)
  for (const width of [2, 3] as const) {
    const columns = [0, 1, 2].slice(0, width).map((c) => batch.map((r) => r[c]))
    // The expected loss: the same rows (anchors, positives, negatives tokenised together), all with dropout.
    let expected = NaN,
      withoutNegatives = NaN
    const { info } = await supervisedStep(dir, columns, 0, async (model) => {
      const enc = await (await Tokenizer.load(join(dir, 'micro'))).encodeBatch(columns.flat(), { maxLength: 10 })
      const z = model.trainForward(enc, { seed: 5, step: 0, pooling: 'cls', keepRows: new Uint8Array(width * 12).fill(1) })
      const H = model.config.hiddenSize
      const view = (k: number) => z.view(k * 12 * H, [12, H])
      expected = losses.simcse(view(0), view(1), { temperature: 0.07, ...(width === 3 ? { hardNegatives: view(2) } : {}) }).loss
      withoutNegatives = losses.simcse(view(0), view(1), { temperature: 0.07 }).loss
    })
    t.equal(info.loss, expected, `${width === 3 ? 'triplets' : 'pairs'}: step loss ${info.loss} = losses.simcse ${expected}`)
    t.same(Object.keys(info.parts), ['simcse'])
    if (width === 3) t.not(info.loss, withoutNegatives, 'the hard negatives change the loss')
  }
})

t.test('triplets in micro-batches: the gradients of the unchunked step (M = 1, 5, 36)', async (t) => {
  const columns = [0, 1, 2].map((c) => rows.slice(0, 12).map((r) => r[c]))
  await checkMicroBatches(t, dir, columns, [1, 5, 36])
})

t.test('nonsensical combinations are refused, naming the option', async (t) => {
  const base = { ...TINY_RUN, data: csv, out: join(dir, 'refused') }
  for (const objective of ['simcse++', 'off-dropout', 'dcl'] as const)
    await t.rejects(
      train({ ...base, objective }),
      new RegExp(
        `^train: objective ${objective.replace(/\+/g, '\\+')} needs one sentence per line; csv pairs/triplets train with objective simcse$`,
      ),
    )
  await t.rejects(train({ ...base, format: 'xml' as never }), /format must be auto, text, csv, tsv, jsonl, parquet \(got xml\)/)
  const plain = write('plain-for-csv.txt', 'the cat sat\nthe dog ran\n')
  await t.rejects(train({ ...base, data: plain, format: 'csv' }), /plain-for-csv\.txt: the first line must name the columns/)
  t.notOk(existsSync(join(dir, 'refused', 'run', 'train.jsonl')), 'nothing was trained')
  // --format text reads a .csv as lines, as asked (the header among them).
  const lines = await train({ ...base, format: 'text', steps: 1, out: join(dir, 'as-text') })
  t.equal(lines.steps, 1)
  t.equal(JSON.parse(readFileSync(join(dir, 'as-text', 'run', 'training_args.json'), 'utf8')).objective, 'simcse++')
})
