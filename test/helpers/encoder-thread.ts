// Runs in a worker_thread (test/sentence-encoder.test.ts): loads a SentenceEncoder there and
// posts back the vectors of workerData.sentences.
import { parentPort, workerData } from 'node:worker_threads'
import { SentenceEncoder } from '../../lib/index.js'

const { dir, sentences } = workerData as { dir: string; sentences: string[] }
const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
const vectors = await enc.encode(sentences, { batchSize: 8 })
await enc.close()
parentPort!.postMessage(vectors)
