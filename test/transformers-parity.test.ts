// Every architecture simcsepp reads, against transformers itself: test/helpers/hf_models.py makes a tiny random
// model of each model type with transformers (PyTorch), saves it with save_pretrained and runs it in float64; here
// BertModel loads the folder and must give transformers' last_hidden_state, and the gradients PyTorch's autograd
// gives every parameter (by transformers' name) for a mean-pooled loss. Needs a Python that imports torch and
// transformers (SIMCSEPP_PYTHON, else python3; .ci/run installs them when it can): skipped, saying so, without.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SentenceEncoder, Tensor } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { checkpointName } from '../lib/model/names.js'
import { relErr } from './helpers/reference.js'
import { tempDir } from './helpers/train-corpus.js'

const python = process.env.SIMCSEPP_PYTHON || 'python3'
const hasTorch = spawnSync(python, ['-c', 'import torch, transformers'], { stdio: 'ignore' }).status === 0
const skip = hasTorch ? false : `${python} cannot import torch and transformers (set SIMCSEPP_PYTHON to one that can)`

interface Reference {
  ids: number[]
  mask: number[]
  B: number
  T: number
  weights: number[]
  hidden: number[]
  grads: Record<string, number[]>
}

t.test('tiny random models made and run by transformers: our outputs and gradients are theirs', { skip }, async (t) => {
  const out = tempDir('simcsepp-hf-models-')
  const made = spawnSync(python, [join(import.meta.dirname, 'helpers', 'hf_models.py'), out], { encoding: 'utf8', timeout: 300_000 })
  if (made.status !== 0) return t.fail(`hf_models.py exited ${made.status}: ${(made.stderr ?? '').slice(-2000)}`)
  const types = made.stdout.trim().split('\n')
  t.same(types, ['bert', 'roberta', 'xlm-roberta', 'camembert', 'distilbert', 'mpnet'], 'every model type written')
  for (const type of types) {
    const ref = JSON.parse(readFileSync(join(out, `${type}.json`), 'utf8')) as Reference
    const model = await BertModel.load(join(out, type))
    const batch = { inputIds: Int32Array.from(ref.ids), attentionMask: Int32Array.from(ref.mask), shape: [ref.B, ref.T] }
    const hidden = model.forward(batch)
    const h = hidden.toFloat32Array()
    hidden.dispose()
    t.ok(relErr(h, ref.hidden) < 1e-5, `${type}: last_hidden_state within ${relErr(h, ref.hidden).toExponential(2)} of transformers'`)

    const H = model.config.hiddenSize
    model.trainForward(batch, { seed: 1, step: 0, pooling: 'mean', mlp: false })
    model.zeroGrad()
    model.trainBackward(Tensor.from(Float32Array.from(ref.weights), [ref.B, H]))
    const grads = model.grads.toFloat32Array()
    // L2 errors relative to the tensor's norm, at least the model's largest gradient: the attention key biases' exact gradient is 0, so theirs
    // are rounding noise on both sides.
    const scale = Math.max(...Object.values(ref.grads).map((g) => Math.max(...g.map(Math.abs))))
    let worst = 0,
      worstName = ''
    const compared: string[] = []
    for (const e of model.layout.entries) {
      const name = checkpointName(e.name, model.config.modelType)
      const want = ref.grads[name]
      if (!want) continue // the pooler: no part of last_hidden_state, no gradient in PyTorch either
      compared.push(name)
      const err = relErr(grads.subarray(e.offset, e.offset + e.size), want, scale)
      if (err > worst) [worst, worstName] = [err, name]
    }
    const missing = Object.keys(ref.grads).filter((n) => !compared.includes(n))
    t.same(missing, [], `${type}: every tensor PyTorch gives a gradient is one of ours`)
    t.ok(worst < 1e-5, `${type}: gradients of ${compared.length} tensors, worst ${worstName} ${worst.toExponential(2)}`)
    model.dispose()
  }
})

const hasSentenceTransformers = hasTorch && spawnSync(python, ['-c', 'import sentence_transformers'], { stdio: 'ignore' }).status === 0
const stSkip = hasSentenceTransformers ? false : `${python} cannot import sentence_transformers`

t.test(
  'tiny random sentence-transformers models saved and run by sentence-transformers: SentenceEncoder gives their vectors',
  { skip: stSkip },
  async (t) => {
    const out = tempDir('simcsepp-st-models-')
    const words = join(out, 'words.txt')
    writeFileSync(words, 'the\ncat\nsat\non\nmat\na\ndog\nbird\nriver\nhouse\n')
    const made = spawnSync(python, [join(import.meta.dirname, 'helpers', 'st_models.py'), out, words], {
      encoding: 'utf8',
      timeout: 300_000,
    })
    if (made.status !== 0) return t.fail(`st_models.py exited ${made.status}: ${(made.stderr ?? '').slice(-2000)}`)
    const names = made.stdout.trim().split('\n')
    t.same(names, ['labse-like', 'distiluse-like', 'all-mpnet-like'])
    for (const name of names) {
      const ref = JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8')) as { sentences: string[]; vectors: number[][] }
      const encoder = await SentenceEncoder.load(join(out, name), { device: 'cpu' })
      try {
        const got = await encoder.encode(ref.sentences)
        t.equal(encoder.dimension, ref.vectors[0].length, `${name}: width ${encoder.dimension}`)
        let worst = 0
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, relErr(got[i], ref.vectors[i], 1e-3))
        t.ok(worst < 1e-5, `${name}: vectors within ${worst.toExponential(2)} of sentence-transformers'`)
      } finally {
        await encoder.close()
      }
    }
  },
)
