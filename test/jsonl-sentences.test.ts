// Sentences as a field of JSON Lines objects ({"text": ...}: corpora exported with `datasets`' to_json, C4): trained on
// as a text file's lines (bit for bit the same run), encoded and searched by `--column` (default text, sentence, ...
// or the only field); records without the field, or lines that are not objects, refused naming the line.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import type { TrainResult } from '../lib/train/events.js'
import { cli, needsCli, tempDir, TINY_RUN, WORDS } from './helpers/train-corpus.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'

const dir = tempDir('simcsepp-jsonl-sentences-')
const sentences = Array.from({ length: 30 }, (_, i) => [0, 1, 2, 3].map((k) => WORDS[(i * 5 + k * 7) % WORDS.length]).join(' '))
sentences[4] = '' // an empty record: skipped, as a blank line is
const jsonl = join(dir, 'corpus.jsonl')
writeFileSync(jsonl, sentences.map((s, i) => JSON.stringify({ id: i, text: s, url: `https://x/${i}` })).join('\n') + '\n')
const text = join(dir, 'corpus.txt')
writeFileSync(text, sentences.join('\n') + '\n')
const RUN = { ...TINY_RUN, batchSize: 6, steps: 4, saveEvery: 0 }
const losses = (r: TrainResult) => r.history.flatMap((e) => ('loss' in e ? [e.loss] : []))

t.test('a JSON Lines field of sentences trains as the same sentences one per line do', async (t) => {
  const messages: string[] = []
  const a = await train({ ...RUN, data: jsonl, out: join(dir, 'jsonl') }, { onMessage: (m) => void messages.push(m) })
  const b = await train({ ...RUN, data: text, out: join(dir, 'text') })
  t.match(messages.join('\n'), /corpus\.jsonl: 29 sentences, field text \(jsonl\)/)
  t.same(losses(a), losses(b), 'the same losses at every step')
  t.same(readFileSync(join(dir, 'jsonl', 'model.safetensors')), readFileSync(join(dir, 'text', 'model.safetensors')))
  t.match(JSON.parse(readFileSync(join(dir, 'jsonl', 'run', 'training_args.json'), 'utf8')), { format: 'jsonl', column: 'text' })
})

t.test('records that are not objects, or lack the field, are refused naming the line', async (t) => {
  const out = join(dir, 'refused')
  const write = (name: string, lines: string[]) => {
    const p = join(dir, name)
    writeFileSync(p, lines.join('\n') + '\n')
    return p
  }
  const run = (data: string, extra = {}) => train({ ...RUN, data, out, ...extra })
  await t.rejects(
    run(write('missing.jsonl', ['{"text": "a b"}', '{"text": "c d"}', '{"body": "e f"}'])),
    /missing\.jsonl: line 3: no field text/,
  )
  await t.rejects(run(write('number.jsonl', ['{"text": "a b"}', '{"text": 5}'])), /number\.jsonl: line 2: field text holds 5, not text/)
  await t.rejects(run(write('broken.jsonl', ['{"text": "a b"}', '{"text": "c'])), /broken\.jsonl: line 2 is not JSON/)
  await t.rejects(
    run(write('fields.jsonl', ['{"title": "a b", "body": "c d"}'])),
    /fields\.jsonl: neither supervised examples .* pass --column NAME to train on one \(its columns: title, body\)/,
  )
  await t.rejects(
    run(text, { column: 'text' }),
    /train: column names a column of Parquet data or a field of JSON Lines; .*corpus\.txt is read as text/,
  )
})

t.test('simcsepp encode --file x.jsonl and search --corpus x.jsonl read the field', needsCli, async (t) => {
  const model = await saveTinyModel({ seed: 2, dir: join(dir, 'model') })
  const encode = (args: string[]) =>
    spawnSync(process.execPath, [cli, 'encode', '--model', model, '--device', 'cpu', ...args], { encoding: 'utf8' })
  const small = join(dir, 'small.jsonl')
  writeFileSync(small, ['{"sentence": "a b c"}', '{"sentence": "d e"}'].join('\n') + '\n')
  const fromFile = encode(['--file', small])
  t.equal(fromFile.status, 0, fromFile.stderr)
  const fromArgs = encode(['a b c', 'd e'])
  t.equal(fromFile.stdout, fromArgs.stdout, 'the vectors of the field values')
  const wrong = encode(['--file', small, '--column', 'text'])
  t.not(wrong.status, 0)
  t.match(wrong.stderr, /small\.jsonl: no column text \(its columns: sentence\)/)
  const search = spawnSync(
    process.execPath,
    [cli, 'search', '--model', model, '--device', 'cpu', '--corpus', jsonl, '--json', sentences[7]],
    {
      encoding: 'utf8',
    },
  )
  t.equal(search.status, 0, search.stderr)
  t.equal(JSON.parse(search.stdout)[0].hits[0].sentence, sentences[7], 'the query’s own record first')
})
