// Sentence vectors and cosine similarities with a saved model directory.
// Usage: node examples/encode.mjs <model-dir>
import { SentenceEncoder } from 'simcsepp'

const dir = process.argv[2]
if (!dir) {
  console.error('usage: node examples/encode.mjs <model-dir>')
  process.exit(2)
}

// Pooling and max length come from the model's sentence-transformers files (as the model was trained).
const encoder = await SentenceEncoder.load(dir, { device: 'auto', normalize: true })
const sentences = ['A man is playing a guitar.', 'Someone plays an instrument.', 'The stock market fell sharply today.']
const vectors = await encoder.encode(sentences, { batchSize: 32 }) // one Float32Array per sentence, in input order
const query = await encoder.encode('A person is making music.') // a single Float32Array

console.log(`${vectors.length} vectors of dimension ${encoder.dimension} (device: ${encoder.device}, pooling: ${encoder.pooling})`)
for (const [i, sentence] of sentences.entries()) {
  console.log(`${encoder.similarity(query, vectors[i]).toFixed(4)}  ${sentence}`)
}
await encoder.close() // stops the worker thread and frees the model's memory
