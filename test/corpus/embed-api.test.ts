// Regression corpus of the adversarial pass on the embedding API (issue 9): misspelled options are
// errors, and a similarity of non-finite vectors is reported instead of returning 0.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SentenceEncoder } from '../../lib/index.js'
import { BertModel } from '../../lib/model/bert.js'
import { Tokenizer } from '../../lib/tokenizer.js'
import { writeVocab } from '../../lib/train/vocab.js'

const dir = mkdtempSync(join(tmpdir(), 'simcsepp-embed-corpus-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('unknown options are rejected; NaN in similarity is reported', async (t) => {
  await writeVocab(join(dir, 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'b'])
  const tok = await Tokenizer.load(join(dir, 'vocab.txt'))
  const model = BertModel.create({ ...(await import('../../lib/model/config.js')).namedConfig('tiny', tok.vocabSize) }, { seed: 1 })
  await model.save(dir)
  model.dispose()
  await t.rejects(SentenceEncoder.load(dir, { poolng: 'mean' } as never), /load: unknown option 'poolng'/)
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  try {
    await t.rejects(enc.encode(['a b'], { batchsize: 4 } as never), /encode: unknown option 'batchsize'/)
    t.throws(() => enc.similarity([NaN, 1], [1, 1]), /similarity: a\[0\] is NaN, not a finite number/)
    t.throws(() => enc.similarity([1, 1], [1, Infinity]), /similarity: b\[1\] is Infinity/)
    t.equal(enc.similarity([1, 0], [1, 0]), 1)
  } finally {
    await enc.close()
  }
})
