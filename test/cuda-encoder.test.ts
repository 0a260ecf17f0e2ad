// The encoder on CUDA against the CPU backend, end to end: SentenceEncoder vectors, and a micro model
// trained 3 steps from the same seed (same data order and dropout masks) ending with the same weights.
// Runs on a GPU and on the host emulator (npm run test:emulated); skipped, saying why, when CUDA is
// unavailable or the CUDA backend still lacks an encoder op.
import t from 'tap'
import { join } from 'node:path'
import { cudaStatus, SentenceEncoder } from '../lib/index.js'
import { encoderCudaBlocker } from '../lib/model/cuda-support.js'
import { readSafetensors } from '../lib/safetensors.js'
import { train } from '../lib/train/train.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'

const status = cudaStatus()
const blocker = status.available ? encoderCudaBlocker(true) : `CUDA unavailable: ${status.reason}`
const skip = blocker ?? false
if (skip) console.log(`# skipping CUDA encoder tests: ${skip}`)

const dir = tempDir('simcsepp-cuda-encoder-')

/** max |a - b| / max |b| over one tensor. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0,
    den = 0
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]))
    den = Math.max(den, Math.abs(b[i]))
  }
  return num / Math.max(den, 1e-30)
}

t.test('SentenceEncoder on CUDA returns the CPU vectors within 1e-4', { skip }, async (t) => {
  const model = await microModel(dir, 'micro-encode')
  const sentences = ['the cat sees a dog', 'a small red bird', 'the', 'tree river house likes the small dog bird']
  const cpu = await SentenceEncoder.load(model, { device: 'cpu', precision: 'fp32' })
  const gpu = await SentenceEncoder.load(model, { device: 'cuda', precision: 'fp32' })
  try {
    t.equal(gpu.device, 'cuda')
    const a = await gpu.encode(sentences)
    const b = await cpu.encode(sentences)
    for (let i = 0; i < sentences.length; i++) {
      const d = relDiff(Float32Array.from(a[i]), Float32Array.from(b[i]))
      t.ok(d < 1e-4, `sentence ${i}: relative difference ${d.toExponential(2)}`)
    }
  } finally {
    await cpu.close()
    await gpu.close()
  }
})

for (const precision of ['fp32', 'bf16'] as const)
  t.test(`3 training steps on CUDA end with the CPU weights (${precision}; fp32 within 1e-4, bf16 within 1e-3)`, { skip }, async (t) => {
    const model = await microModel(dir, `micro-train-${precision}`)
    const data = writeSentences(join(dir, `data-${precision}.txt`), 40)
    const run = { model, data, steps: 3, batchSize: 6, maxLen: 10, evalEvery: 0, saveEvery: 0, seed: 5, lr: 1e-3, precision }
    // bf16 on both devices: the CPU rounds the products' operands exactly as the tensor cores do. The
    // tolerance is looser there: an operand whose fp32 value differs by one ulp between the backends
    // (summation order) can round to the neighbouring bf16 value, a 2^-8 step, so rare elements differ
    // more than in fp32 (measured 1.6e-4 after 3 steps); 1e-3 still catches any real error.
    const tolerance = precision === 'fp32' ? 1e-4 : 1e-3
    await train({ ...run, device: 'cuda', out: join(dir, `gpu-${precision}`) })
    await train({ ...run, device: 'cpu', out: join(dir, `cpu-${precision}`) })
    const a = await readSafetensors(join(dir, `gpu-${precision}`, 'model.safetensors'))
    const b = await readSafetensors(join(dir, `cpu-${precision}`, 'model.safetensors'))
    t.same([...a.keys()].sort(), [...b.keys()].sort(), 'the same tensors')
    for (const [name, tb] of b) {
      const ta = a.get(name)!
      // The attention key bias has an exact gradient of 0 (softmax is shift-invariant): AdamW turns the
      // rounding noise of either backend into updates of up to lr per step there, so it is compared to that.
      if (/attention\.self\.key\.bias$/.test(name)) {
        let worst = 0
        for (let i = 0; i < ta.data.length; i++) worst = Math.max(worst, Math.abs(ta.data[i] - tb.data[i]))
        t.ok(worst <= 2 * run.steps * run.lr, `${name}: ${worst.toExponential(2)} (zero-gradient bias, within 2·steps·lr)`)
      } else {
        const d = relDiff(ta.data, tb.data)
        t.ok(d < tolerance, `${name}: relative difference ${d.toExponential(2)}`)
      }
    }
  })
