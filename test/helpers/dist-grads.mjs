// One training step's parameter gradients, summed over the ranks when mpirun started this process, as
// rank 0 writes them (raw little-endian float32, before clipping and AdamW): test/distributed.test.ts
// compares R ranks with one process gradient by gradient, where rounding differences are not yet
// amplified by AdamW. Plain node over the built dist/ (mpirun starts it without the TypeScript loader).
// Usage: node dist-grads.mjs MODEL_DIR DATA_FILE OBJECTIVE N OUT_FILE
// DATA_FILE: sentences, one per line; or a .jsonl of supervised examples (each object's values in key order:
// anchor, positive, then negatives), one view per column, a numeric `score` being the pair's gold score (cosent).
import { readFileSync, writeFileSync } from 'node:fs'

const [modelDir, dataFile, objective, n, outFile] = process.argv.slice(2)
const dist = new URL('../../dist/', import.meta.url)
/** @param {string} path */
const load = (path) => import(new URL(path, dist).href)
const [{ BertModel }, { Tokenizer }, { AdamW }, { TrainingStep }, { resolveTrainOptions }, { startDistributed }] = await Promise.all([
  load('model/bert.js'),
  load('tokenizer.js'),
  load('optim/adamw.js'),
  load('train/step.js'),
  load('train/options.js'),
  load('distributed/communicator.js'),
])
const batch = Number(n)
const comm = startDistributed('auto')
const model = await BertModel.load(modelDir, { mlp: true })
const tokenizer = await Tokenizer.load(modelDir)
const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: 3e-5 })
// gradClip 1e6: the gradients as computed, never scaled.
const o = resolveTrainOptions({ data: dataFile, out: 'unused', objective, batchSize: batch, maxLen: 10, seed: 5, gradClip: 1e6 })
const lines = readFileSync(dataFile, 'utf8').split('\n').filter(Boolean).slice(0, batch)
const objects = dataFile.endsWith('.jsonl') ? lines.map((l) => JSON.parse(l)) : null
const scores = objects && typeof objects[0].score === 'number' ? Float32Array.from(objects, (e) => e.score) : undefined
const examples = objects?.map((e) => Object.entries(e).flatMap(([k, v]) => (k === 'score' ? [] : [v]))) ?? null
const columns = examples ? examples[0].map((_, c) => examples.map((e) => e[c])) : undefined
const shape = { batch, maxLen: 10, totalSteps: 1, microBatch: 0, columns: columns?.length }
const step = new TrainingStep(model, opt, tokenizer, o, shape, 'cpu', comm)
const sentences = columns ? columns[0] : lines
await step.run(0, { next: async () => ({ sentences, columns, epoch: 0, scores }) }, () => 0, null)
if (!comm || comm.rank === 0) writeFileSync(outFile, model.grads.toFloat32Array())
