// The encoder on CUDA against the CPU backend, end to end: SentenceEncoder vectors, and a micro model
// trained 3 steps from the same seed (same data order and dropout masks) ending with the same weights.
// The checks are in helpers/encoder-e2e.mjs, which scripts/gpu-check.mjs runs on a GPU too.
// Runs on a GPU and on the host emulator (npm run test:emulated); skipped, saying why, when CUDA is
// unavailable or the CUDA backend still lacks an encoder op.
import t from 'tap'
import { cudaStatus, SentenceEncoder } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { namedConfig } from '../lib/model/config.js'
import { encoderCudaBlocker } from '../lib/model/cuda-support.js'
import { readSafetensors } from '../lib/safetensors.js'
import { train } from '../lib/train/train.js'
import { buildVocab, writeVocab } from '../lib/train/vocab.js'
import { encodeChecks, mixtureChecks, trainChecks } from './helpers/encoder-e2e.mjs'
import { tempDir } from './helpers/train-corpus.js'

const status = cudaStatus()
const blocker = status.available ? encoderCudaBlocker(true) : `CUDA unavailable: ${status.reason}`
const skip = blocker ?? false
if (skip) console.log(`# skipping CUDA encoder tests: ${skip}`)

const dir = tempDir('simcsepp-cuda-encoder-')
const lib = { BertModel, namedConfig, buildVocab, writeVocab, SentenceEncoder, train, readSafetensors }

t.test('SentenceEncoder on CUDA returns the CPU vectors within 1e-4', { skip }, async (t) => {
  for (const check of await encodeChecks(lib, dir, 'cuda')) t.ok(check.ok, check.message)
})

for (const precision of ['fp32', 'bf16'] as const)
  t.test(`3 training steps on CUDA end with the CPU weights (${precision}; fp32 within 1e-4, bf16 2^-8)`, { skip }, async (t) => {
    for (const check of await trainChecks(lib, dir, 'cuda', precision)) t.ok(check.ok, check.message)
  })

// DistilBERT runs the same kernels in another order: no token types (a row of zeros added, no gradient formed
// for it), no dropout on the attention's output.
t.test('DistilBERT on CUDA: the CPU vectors within 1e-4, and the CPU weights after 3 training steps (fp32)', { skip }, async (t) => {
  for (const check of await encodeChecks(lib, dir, 'cuda', 'distilbert')) t.ok(check.ok, check.message)
  for (const check of await trainChecks(lib, dir, 'cuda', 'fp32', 'distilbert')) t.ok(check.ok, check.message)
})

// gpu-check's mixture: three datasets in turn, each with its objective's step graphs (scores and teacher vectors bound).
t.test('three datasets (simcse++, cosent, distill) on CUDA: the CPU weights after 9 fp32 steps', { skip }, async (t) => {
  for (const check of await mixtureChecks(lib, dir, 'cuda')) t.ok(check.ok, check.message)
})
