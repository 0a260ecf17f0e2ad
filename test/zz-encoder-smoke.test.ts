import t from 'tap'
import { SentenceEncoder } from '../lib/index.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'
t.test('smoke', async (t) => {
  const dir = await saveTinyModel()
  console.error('DIR', dir)
  const enc = await SentenceEncoder.load(dir)
  t.equal(enc.dimension, 32)
  const v = await enc.encode(sentences(100))
  t.equal(v.length, 100)
  const one = await enc.encode('the cat sat')
  t.equal(one.length, 32)
  t.comment(enc.device, enc.deviceNote)
  await enc.close()
})
