// The vectors training's evaluations and the demo score (lib/train/evaluation.ts's modelEmbedder): passes of 128
// sentences, longest first, each padded to its longest; every sentence's vector the one it gets embedded alone (to
// float32's rounding: other passes block the products otherwise), in input order, and SentenceEncoder's.
import t from 'tap'
import { BertModel } from '../lib/model/bert.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { SentenceEncoder } from '../lib/index.js'
import { modelEmbedder } from '../lib/train/evaluation.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'

for (const pooling of ['cls', 'mean'] as const)
  t.test(`${pooling} pooling: each vector is the sentence's own, in input order`, async (t) => {
    const dir = await saveTinyModel({ seed: 3 })
    const model = await BertModel.load(dir, { device: 'cpu' })
    const tokenizer = await Tokenizer.load(dir)
    t.teardown(() => model.dispose())
    // 300 sentences of 1 to 30 words (3 passes), and an empty one: lengths from 2 to the 24 tokens of maxLen.
    const texts = [...sentences(300, 11), '']
    const vectors = await modelEmbedder(model, tokenizer, 24, pooling)(texts)
    t.equal(vectors.length, texts.length)
    // Other passes round otherwise (their shapes block the products differently): within float32's rounding.
    const largest = (pairs: [Float32Array, Float32Array][]) =>
      Math.max(...pairs.map(([x, y]) => Math.max(...x.map((v, d) => Math.abs(v - y[d])))))
    const picked = [0, 1, 2, 57, 127, 128, 129, 255, 256, 299, 300]
    const alone = await Promise.all(picked.map(async (i) => (await modelEmbedder(model, tokenizer, 24, pooling)([texts[i]]))[0]))
    const aloneWorst = largest(picked.map((i, k) => [vectors[i], alone[k]]))
    t.ok(aloneWorst < 1e-5, `the vector of the sentence embedded alone (largest difference ${aloneWorst.toExponential(2)})`)
    const enc = await SentenceEncoder.load(dir, { device: 'cpu', pooling, maxLength: 24 })
    const again = await enc.encode(texts)
    await enc.close()
    const encoderWorst = largest(texts.map((_, i) => [vectors[i], again[i]]))
    t.ok(encoderWorst < 1e-5, `SentenceEncoder's vectors (largest difference ${encoderWorst.toExponential(2)})`)
    // Input order: a vector is not its neighbour's (the tolerance above is far below their distance).
    t.ok(largest([[vectors[0], again[1]]]) > 1e-3, 'sentence 0 is not sentence 1')
  })
