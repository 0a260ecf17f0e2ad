// encode()'s onProgress: one call per finished batch on the caller's thread, counts that add up to the
// sentences, vectors unchanged, a throwing callback rejecting the call; and the CLI's pieces: TSV lines
// and escaping, and the progress bar only on a terminal for long files.
import t from 'tap'
import { rmSync } from 'node:fs'
import { SentenceEncoder, type EncodeProgress } from '../lib/index.js'
import { encodeLine, encodeProgressBar, PROGRESS_MIN_LINES, tsvField } from '../lib/cli/encode-output.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'

t.test('onProgress: done grows batch by batch to total; the vectors are those without it', async (t) => {
  const dir = await saveTinyModel({ seed: 2 })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.teardown(() => enc.close())
  const texts = sentences(100, 4)
  const want = await enc.encode(texts, { batchSize: 16 })
  const wantFew = await enc.encode(texts.slice(0, 3))
  const calls: EncodeProgress[] = []
  let settled = false
  const got = await enc
    .encode(texts, { batchSize: 16, onProgress: (p) => (t.notOk(settled, 'called before encode() resolves'), calls.push(p)) })
    .finally(() => (settled = true))
  t.same(got, want, 'the same vectors')
  t.same(
    calls.map((c) => c.done),
    [16, 32, 48, 64, 80, 96, 100],
    'one call per batch of 16, the last with all 100',
  )
  t.ok(
    calls.every((c) => c.total === 100),
    'total is the sentences of the call',
  )

  const boom = new Error('stop here')
  await t.rejects(
    enc.encode(texts, {
      batchSize: 16,
      onProgress: () => {
        throw boom
      },
    }),
    boom,
    'a throwing onProgress rejects encode()',
  )
  t.same(await enc.encode(texts.slice(0, 3)), wantFew, 'and the encoder still works after it')
  await t.rejects(
    enc.encode(texts, { onProgress: 5 as unknown as () => void }),
    /SentenceEncoder: encode: onProgress must be a function, got a number \(5\)/,
  )
})

t.test('TSV lines: escaped sentence, then float32 shortest decimals', async (t) => {
  t.equal(tsvField('a\tb\\c\nd\re'), 'a\\tb\\\\c\\nd\\re')
  t.equal(tsvField('plain'), 'plain')
  const v = Float32Array.from([0.1, -2.5, 1 / 3])
  const line = encodeLine('tsv', 'x\ty', v)
  t.equal(line, 'x\\ty\t0.1\t-2.5\t0.33333334')
  t.same(Float32Array.from(line.split('\t').slice(1).map(Number)), v, 'reads back exactly')
  t.equal(encodeLine('json', 'x', v), '[0.1,-2.5,0.33333334]')
  t.equal(encodeLine('jsonl', 'x', v), '{"sentence":"x","embedding":[0.1,-2.5,0.33333334]}')
})

t.test('progress bar: on a terminal for long files only', async (t) => {
  const out: string[] = []
  const tty = { isTTY: true, columns: 100, write: (s: string) => out.push(s) }
  t.equal(encodeProgressBar(PROGRESS_MIN_LINES - 1, tty), null, 'a short file: none')
  t.equal(encodeProgressBar(5000, { write: (s: string) => out.push(s) }), null, 'not a terminal: none')
  const bar = encodeProgressBar(5000, tty)
  t.ok(bar)
  bar!.update(2500)
  bar!.update(5000)
  bar!.finish()
  t.match(out.join(''), /50% +2500\/5000 sentences/)
  t.match(out.join(''), /100% +5000\/5000 sentences/)
})
