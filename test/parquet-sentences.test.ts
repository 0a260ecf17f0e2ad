// Unsupervised training on a Parquet column of sentences (sentence-transformers/wikipedia-en-sentences, a Hugging
// Face corpus, is one): read as a text file's lines are (empty rows skipped, the same seeded order), so a run on
// the column equals a run on the same sentences one per line, bit for bit; the column is recorded and fixed on
// resume; a file whose columns name supervised pairs stays supervised unless --column is given; shards (a folder, a
// pattern) read as one table.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import { detectFormat, PairFile } from '../lib/data/pairs.js'
import type { TrainResult } from '../lib/train/events.js'
import { resumeOptions } from '../lib/train/resume-options.js'
import { cli, needsCli, tempDir, TINY_RUN } from './helpers/train-corpus.js'

const fixture = (name: string) => join(process.cwd(), 'test', 'fixtures', 'parquet', name)
const { sentences } = JSON.parse(readFileSync(fixture('expected.json'), 'utf8')) as { sentences: string[] }
const dir = tempDir('simcsepp-parquet-sentences-')
const RUN = { ...TINY_RUN, batchSize: 6, steps: 4, saveEvery: 0 }
const losses = (r: TrainResult) => r.history.flatMap((e) => ('loss' in e ? [e.loss] : []))

t.test('a Parquet column of sentences trains as the same sentences one per line do, bit for bit', async (t) => {
  t.equal(sentences[6], '', 'the fixture has an empty row (skipped, as a blank line is)')
  const text = join(dir, 'sentences.txt')
  writeFileSync(text, sentences.join('\n') + '\n')
  const messages: string[] = []
  const fromParquet = await train(
    { ...RUN, data: fixture('sentences.parquet'), out: join(dir, 'parquet') },
    { onMessage: (m) => void messages.push(m) },
  )
  const fromText = await train({ ...RUN, data: text, out: join(dir, 'text') })
  t.match(messages.join('\n'), /sentences\.parquet: 29 sentences, column sentence \(parquet\)/)
  t.equal(fromParquet.steps, 4)
  t.same(losses(fromParquet), losses(fromText), 'the same losses at every step (same sentences, order and masks)')
  t.ok(losses(fromParquet).every((l) => Number.isFinite(l) && l > 0))
  const args = JSON.parse(readFileSync(join(dir, 'parquet', 'run', 'training_args.json'), 'utf8'))
  t.match(args, { format: 'parquet', column: 'sentence', objective: 'simcse++' }, 'the column chosen is recorded')
  const saved = readFileSync(join(dir, 'parquet', 'model.safetensors'))
  t.same(saved, readFileSync(join(dir, 'text', 'model.safetensors')), 'the same weights saved')
})

t.test('a resumed run continues on its column to the same weights, and refuses another column', async (t) => {
  const run = { ...RUN, data: fixture('stsb.parquet'), column: 'sentence1' }
  await train({ ...run, out: join(dir, 'whole') })
  const out = join(dir, 'resumed')
  const ctl = new AbortController()
  const first = await train({ ...run, out }, { signal: ctl.signal, onStep: (s) => void (s.step === 2 && ctl.abort()) })
  t.equal(first.steps, 2, 'stopped after step 2')
  await t.rejects(
    train({ ...run, column: 'sentence2', out, resume: out }),
    /--resume: option column was "sentence1" in the checkpointed run, now "sentence2"/,
  )
  // --resume DIR alone: the options of training_args.json, the column among them.
  const rest = await train((await resumeOptions(out))!)
  t.equal(rest.steps, 4)
  t.same(readFileSync(join(out, 'model.safetensors')), readFileSync(join(dir, 'whole', 'model.safetensors')), 'the same weights')
})

t.test('which column: given, the only one, one named text/sentence/...; supervised names stay supervised', async (t) => {
  const messages: string[] = []
  const say = { onMessage: (m: string) => void messages.push(m) }
  // text and label: the text column, without supervision.
  await train({ ...RUN, steps: 1, data: fixture('unnamed.parquet'), out: join(dir, 'unnamed') }, say)
  t.match(messages.join('\n'), /unnamed\.parquet: 12 sentences, column text \(parquet\)/)
  // anchor, positive, negative: supervised, unless a column is chosen.
  messages.length = 0
  await train({ ...RUN, steps: 1, data: fixture('triplets-snappy.parquet'), out: join(dir, 'triplets') }, say)
  t.match(messages.join('\n'), /12 triplets \(anchor, positive, hard negative\), read as parquet: supervised SimCSE/)
  messages.length = 0
  await train({ ...RUN, steps: 1, data: fixture('triplets-snappy.parquet'), column: 'positive', out: join(dir, 'positives') }, say)
  t.match(messages.join('\n'), /triplets-snappy\.parquet: 12 sentences, column positive \(parquet\)/)
})

t.test('refusals name the file, the column and the way out', async (t) => {
  const out = join(dir, 'refused')
  await t.rejects(
    train({ ...RUN, data: fixture('titles.parquet'), out }),
    /titles\.parquet: neither supervised examples .* nor one column of sentences: pass --column NAME to train on one \(its columns: title, body\)/,
  )
  await t.rejects(
    train({ ...RUN, data: fixture('stsb.parquet'), column: 'text', out }),
    /stsb\.parquet: no column text \(its columns: sentence1/,
  )
  await t.rejects(
    train({ ...RUN, data: fixture('stsb.parquet'), column: 'score', out }),
    /stsb\.parquet: row 1: column score holds a number, not text/,
  )
  await t.rejects(
    train({ ...RUN, data: fixture('null-positive.parquet'), column: 'positive', out }),
    /null-positive\.parquet: row 4: column positive holds no value, not text/,
  )
  const csv = join(dir, 'pairs.csv')
  writeFileSync(csv, 'anchor,positive\na b,c d\ne f,g h\n')
  await t.rejects(
    train({ ...RUN, data: csv, column: 'anchor', out }),
    /train: column names a column of Parquet data or a field of JSON Lines; .*pairs\.csv is read as csv/,
  )
  await t.rejects(
    train({ ...RUN, data: fixture('sentences.parquet'), negativesPerExample: 2, out }),
    /train: negativesPerExample applies to supervised data .* holds sentences/,
  )
  await t.rejects(
    train({ ...RUN, data: fixture('sentences.parquet'), column: 7 as unknown as string, out }),
    /train: column must be a string \(got 7\)/,
  )
})

t.test('simcsepp train --data x.parquet --column NAME', needsCli, async (t) => {
  const out = join(dir, 'cli')
  const r = spawnSync(
    process.execPath,
    [cli, 'train', '--config', 'tiny', '--batch-size', '6', '--max-len', '12', '--eval-every', '0', '--steps', '2'].concat([
      '--data',
      fixture('stsb.parquet'),
      '--column',
      'sentence2',
      '--out',
      out,
    ]),
    { encoding: 'utf8' },
  )
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout + r.stderr, /stsb\.parquet: 12 sentences, column sentence2 \(parquet\)/)
  t.equal(JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')).column, 'sentence2')
})

t.test('a dataset in shards (a folder, or a pattern) is one table; a folder of several splits is refused', async (t) => {
  // The sentences in two train shards train as the one file does.
  const one = await train({ ...RUN, data: fixture('sentences.parquet'), out: join(dir, 'one-file') })
  const messages: string[] = []
  const sharded = await train({ ...RUN, data: fixture('wiki'), out: join(dir, 'shards') }, { onMessage: (m) => void messages.push(m) })
  t.match(messages.join('\n'), /wiki: 29 sentences, column sentence \(parquet\)/)
  t.same(losses(sharded), losses(one), 'the same losses as the single file')
  // Supervised pairs: the train shards by pattern, in name order.
  const pairs = await PairFile.open(fixture('shards/train-*.parquet'), 'parquet')
  const { anchors, positives } = JSON.parse(readFileSync(fixture('expected.json'), 'utf8')) as { anchors: string[]; positives: string[] }
  t.same(await pairs.readColumns(Array.from({ length: pairs.count }, (_, i) => i)), [anchors, positives])
  t.equal(await detectFormat(fixture('shards/train-*.parquet')), 'parquet')
  await t.rejects(
    PairFile.open(fixture('shards'), 'parquet'),
    /shards: holds the splits test, train: train on one, e\.g\. '.*shards\/train-\*\.parquet'/,
  )
  await t.rejects(PairFile.open(fixture('shards/validation-*.parquet'), 'parquet'), /validation-\*\.parquet: no file matches/)
  await t.rejects(
    train({ ...RUN, data: fixture('mismatch'), out: join(dir, 'mismatch') }),
    /b\.parquet: its columns \(text\) are not those of a\.parquet \(sentence\)/,
  )
})
