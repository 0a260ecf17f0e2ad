// Every architecture simcsepp reads, against transformers itself: test/helpers/hf_models.py makes a tiny random
// model of each model type with transformers (PyTorch), saves it with save_pretrained and runs it in float64; here
// BertModel loads the folder and must give transformers' last_hidden_state, and the gradients PyTorch's autograd
// gives every parameter (by transformers' name) for a mean-pooled loss. Needs a Python that imports torch and
// transformers (SIMCSEPP_PYTHON, else python3; .ci/run installs them when it can): skipped, saying so, without.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SentenceEncoder, Tensor, mineHardNegatives } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { train } from '../lib/train/train.js'
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
  t.same(types, ['bert', 'roberta', 'xlm-roberta', 'camembert', 'distilbert', 'mpnet', 'modernbert'], 'every model type written')
  for (const type of types) {
    const ref = JSON.parse(readFileSync(join(out, `${type}.json`), 'utf8')) as Reference
    const model = await BertModel.load(join(out, type))
    const batch = { inputIds: Int32Array.from(ref.ids), attentionMask: Int32Array.from(ref.mask), shape: [ref.B, ref.T] }
    const hidden = model.forward(batch)
    const h = hidden.toFloat32Array()
    hidden.dispose()
    // ModernBERT's padded rows are not transformers' (hf_models.py): its reference holds zeros there, and so do we here.
    if (type === 'modernbert') ref.mask.forEach((m, r) => m || h.fill(0, r * model.config.hiddenSize, (r + 1) * model.config.hiddenSize))
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
const hasDatasets = hasSentenceTransformers && spawnSync(python, ['-c', 'import datasets'], { stdio: 'ignore' }).status === 0

/** The first n distinct values of sentence(0), sentence(1), ... */
function distinctSentences(sentence: (i: number) => string, n: number): string[] {
  const out = new Set<string>()
  for (let i = 0; out.size < n && i < 100 * n; i++) out.add(sentence(i))
  return [...out]
}

/** Runs one of the helper scripts; its stdout, or a failure naming it. */
function runPython(script: string, args: string[]): string {
  const r = spawnSync(python, [join(import.meta.dirname, 'helpers', script), ...args], { encoding: 'utf8', timeout: 300_000 })
  if (r.status !== 0) throw new Error(`${script} exited ${r.status}: ${(r.stderr ?? '').slice(-2000)}`)
  return r.stdout
}

/** The largest relative error of our vectors against theirs, sentence by sentence. */
async function worstAgainst(
  dir: string,
  sentences: string[],
  theirs: number[][],
  promptName?: string,
): Promise<{ worst: number; dimension: number }> {
  const encoder = await SentenceEncoder.load(dir, { device: 'cpu' })
  try {
    const got = await encoder.encode(sentences, promptName === undefined ? {} : { promptName })
    return { worst: Math.max(...got.map((v, i) => relErr(v, theirs[i], 1e-3))), dimension: encoder.dimension }
  } finally {
    await encoder.close()
  }
}

t.test(
  'sentence-transformers models, both ways: theirs through SentenceEncoder, ours through sentence-transformers',
  { skip: stSkip },
  async (t) => {
    const out = tempDir('simcsepp-st-models-')
    const words = join(out, 'words.txt')
    writeFileSync(words, 'the\ncat\nsat\non\nmat\na\ndog\nbird\nriver\nhouse\nquery\npassage\n:\n')
    const names = runPython('st_models.py', [out, words]).trim().split('\n')
    t.same(names, ['labse-like', 'distiluse-like', 'all-mpnet-like', 'e5-like', 'gte-modernbert-like', 'instruct-like'])
    const data = join(out, 'data.txt')
    writeFileSync(
      data,
      Array.from({ length: 8 }, (_, i) => `${['the cat sat', 'a dog on the mat', 'bird river', 'house'][i % 4]} ${i}`).join('\n') + '\n',
    )
    const hasOnnx = spawnSync(python, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0
    const sentences = (JSON.parse(readFileSync(join(out, `${names[0]}.json`), 'utf8')) as { sentences: string[] }).sentences
    const sentencesFile = join(out, 'sentences.json')
    writeFileSync(sentencesFile, JSON.stringify(sentences))
    const onnxFiles: Record<string, string[]> = {}
    for (const name of names) {
      const ref = JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8')) as {
        sentences: string[]
        vectors: number[][]
        prompted: Record<string, number[][]>
      }
      t.same(ref.sentences, sentences, `${name}: the same sentences as the others`)
      // Theirs: saved by sentence-transformers 6 (module types of its own, Dense and Normalize folders, the length in
      // the tokenizer), its vectors from SentenceEncoder.
      const read = await worstAgainst(join(out, name), ref.sentences, ref.vectors)
      t.equal(read.dimension, ref.vectors[0].length, `${name}: width ${read.dimension}`)
      t.ok(read.worst < 1e-5, `${name}: vectors within ${read.worst.toExponential(2)} of sentence-transformers'`)
      // Its prompts (config_sentence_transformers.json, as sentence-transformers saved them): encode(prompt_name=...).
      for (const [prompt, vectors] of Object.entries(ref.prompted)) {
        const p = await worstAgainst(join(out, name), ref.sentences, vectors, prompt)
        t.ok(p.worst < 1e-5, `${name}: with prompt_name ${JSON.stringify(prompt)}, within ${p.worst.toExponential(2)} of theirs`)
      }

      // Ours: trained a step from it (the Dense modules left out), read by sentence-transformers below.
      await train({ model: join(out, name), data, out: join(out, `${name}-trained`), steps: 1, batchSize: 4, maxLen: 12, evalEvery: 0 })
      if (hasOnnx) {
        const exported = await exportOnnx(join(out, `${name}-trained`), join(out, `${name}-onnx`), { weights: ['fp32', 'fp16', 'q8'] })
        onnxFiles[name] = exported.files.map((f) => f.file)
      }
    }

    // Our trained folders, loaded by sentence-transformers (one Python process for all), give our vectors.
    const theirs = runPython('st_encode.py', [sentencesFile, ...names.map((name) => join(out, `${name}-trained`))])
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as number[][])
    t.equal(theirs.length, names.length, 'a line of vectors per folder')
    for (const [i, name] of names.entries()) {
      const back = await worstAgainst(join(out, `${name}-trained`), sentences, theirs[i])
      t.ok(
        back.worst < 1e-5,
        `${name}: our trained folder, loaded by sentence-transformers, gives our vectors (${back.worst.toExponential(2)})`,
      )
    }

    // Our ONNX exports of them pass onnx's own checker, shape and type inference included.
    if (hasOnnx) {
      const files = Object.values(onnxFiles).flat()
      const lines = runPython('st_encode.py', ['--onnx-check', ...files])
        .trim()
        .split('\n')
      t.same(
        lines.map((line) => line.split(' ')[0]),
        files.map(() => 'ok'),
        `onnx.checker (full_check) passes the fp32, fp16 and q8 exports of every model: ${lines.filter((l) => !l.startsWith('ok ')).join('; ') || 'all ok'}`,
      )
      t.same(
        lines.map((line) => line.replace(/^(ok|FAIL) /, '').replace(/: .*$/, '')),
        files,
        'a line per file, in order',
      )
    }

    // Hard negatives: mineHardNegatives with SentenceEncoder's vectors picks what mine_hard_negatives picks.
    await t.test(
      'hard negatives as mine_hard_negatives mines them',
      { skip: hasDatasets ? false : `${python} cannot import datasets` },
      async (t) => {
        // distiluse-like: its vectors spread the most of the four (random weights make every model's similarities close).
        const model = join(out, 'distiluse-like')
        const w = ['the', 'cat', 'sat', 'on', 'mat', 'a', 'dog', 'bird', 'river', 'house']
        const sentence = (i: number) => [w[i % 10], w[Math.floor(i / 10) % 10], w[(i * 7 + 3) % 10], w[Math.floor(i / 7) % 10]].join(' ')
        const sentences = distinctSentences(sentence, 40)
        t.equal(sentences.length, 40)
        // Anchors apart from the corpus and the positives (sentence-transformers would offer an anchor as its own negative).
        const pairs = [0, 1, 2, 3, 4, 5].map((i) => ({ anchor: sentences[i], positive: sentences[6 + i] }))
        pairs.push({ anchor: sentences[0], positive: sentences[13] }) // an anchor with two positives
        const corpus = sentences.slice(14)
        const encoder = await SentenceEncoder.load(model, { device: 'cpu' })
        try {
          const runs = [
            ['top 3', { numNegatives: 3 }],
            ['ranks from 2, 2 each', { numNegatives: 2, rangeMin: 2 }],
            ['absolute margin 0.001', { numNegatives: 3, absoluteMargin: 0.001 }],
            ['relative margin 0.001, range 20', { numNegatives: 4, relativeMargin: 0.001, rangeMax: 20 }],
            ['max score 0.998, range 30', { numNegatives: 3, maxScore: 0.998, rangeMax: 30 }],
          ] as const
          const pyOptions = runs.map(([, options]) => ({
            num_negatives: options.numNegatives,
            ...('rangeMin' in options ? { range_min: options.rangeMin } : {}),
            ...('rangeMax' in options ? { range_max: options.rangeMax } : {}),
            ...('absoluteMargin' in options ? { absolute_margin: options.absoluteMargin } : {}),
            ...('relativeMargin' in options ? { relative_margin: options.relativeMargin } : {}),
            ...('maxScore' in options ? { max_score: options.maxScore } : {}),
          }))
          const input = join(out, 'mine.json')
          writeFileSync(input, JSON.stringify({ pairs: pairs.map((p) => [p.anchor, p.positive]), corpus, runs: pyOptions }))
          // One Python process mines every set of options (a line of triplets each).
          const mined = runPython('st_mine.py', [model, input])
            .trim()
            .split('\n')
            .map((line) => JSON.parse(line) as string[][])
          t.equal(mined.length, runs.length, 'a line of triplets per set of options')
          for (const [i, [what, options]] of runs.entries()) {
            const ours = await mineHardNegatives((s) => encoder.encode(s), pairs, { corpus, ...options })
            const theirs = mined[i]
            t.ok(theirs.length > 0, `${what}: ${theirs.length} triplets (not a vacuous check)`)
            t.same(
              ours.triplets.map((x) => [x.anchor, x.positive, x.negative]),
              theirs,
              `${what}: the same ${theirs.length} triplets, in the same order`,
            )
          }
        } finally {
          await encoder.close()
        }
      },
    )
  },
)
