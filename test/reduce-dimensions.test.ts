// A model's vectors made shorter by their principal components (reduceDimensions, `simcsepp reduce`;
// sentence-transformers' dimensionality_reduction example): the copy's vectors are the components times the model's
// (normalised again where the model normalises), the components orthonormal and holding at least the variance of any
// other k axes tried, the share of variance said as a float64 computation says; the sentence-transformers files of
// the copy (a Dense module before the Normalize, or the files a plain folder lacked); refusals; the command.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { reduceDimensions } from '../lib/index.js'
import { readSafetensors } from '../lib/safetensors.js'
import { modelVectors, saveTinyModel, sentences, writeNormalizedModules, writePoolingConfig } from './helpers/encoder-tiny-model.js'
import { needsCli, runCli, tempDir } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-reduce-')
const fit = sentences(60, 3, 12)
const probe = sentences(12, 11, 12)

const vectorsOf = (model: string, texts: string[]) => modelVectors(model, texts)

/** The components the copy's Dense module holds, [k][D]. */
async function componentsOf(out: string, dense: string, k: number, D: number): Promise<number[][]> {
  const w = (await readSafetensors(join(out, dense, 'model.safetensors'))).get('linear.weight')!
  t.same(w.shape, [k, D])
  return Array.from({ length: k }, (_, i) => Array.from(w.data.subarray(i * D, (i + 1) * D)))
}

/** The summed variance of the rows' projections on `axes` (float64). */
function varianceOn(rows: Float32Array[], axes: number[][]): number {
  let total = 0
  for (const a of axes) {
    const p = rows.map((r) => r.reduce((s, x, j) => s + x * a[j], 0))
    const mean = p.reduce((s, x) => s + x, 0) / p.length
    total += p.reduce((s, x) => s + (x - mean) ** 2, 0) / p.length
  }
  return total
}

const unit = (j: number, D: number) => Array.from({ length: D }, (_, i) => (i === j ? 1 : 0))
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, x, i) => s + x * b[i], 0)

t.test('a model ending in Normalize: the Dense module before it; cosine as the recipe; the variance said', async (t) => {
  const model = await saveTinyModel({ dir: join(dir, 'normalized'), pooling: 'mean', seed: 4 })
  writeNormalizedModules(model)
  writeFileSync(join(model, 'README.md'), '# the original card\n')
  const out = join(dir, 'normalized-8d')
  const r = await reduceDimensions(model, out, { dim: 8, sentences: fit })
  t.match(r, { from: 32, to: 8, sentences: 60, dense: '2_Dense', normalized: true })
  t.same(
    (JSON.parse(readFileSync(join(out, 'modules.json'), 'utf8')) as { idx: number; path: string; type: string }[]).map((m) => [
      m.idx,
      m.path,
      m.type.split('.').at(-1),
    ]),
    [
      [0, '', 'Transformer'],
      [1, '1_Pooling', 'Pooling'],
      [2, '2_Dense', 'Dense'],
      [3, '2_Normalize', 'Normalize'],
    ],
  )
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.notMatch(card, 'the original card', "the model's card is not copied")
  t.match(
    card,
    `\`normalized\` with its vectors reduced from 32 to 8 values, not trained further: its first 8 principal components over 60 sentences of the given sentences (${(100 * r.explained).toFixed(1)}% of their variance)`,
  )
  t.match(card, 'before its Normalize module (`2_Dense`)')
  t.notMatch(card, 'base_model', 'a local model: no base_model')
  const w = await componentsOf(out, '2_Dense', 8, 32)
  for (let i = 0; i < 8; i++)
    for (let j = 0; j < 8; j++) t.ok(Math.abs(dot(w[i], w[j]) - (i === j ? 1 : 0)) < 1e-5, `components ${i}, ${j} orthonormal`)

  const [before, after] = [await vectorsOf(model, probe), await vectorsOf(out, probe)]
  for (const [s, v] of after.entries()) {
    const p = w.map((c) => dot(c, before[s]))
    const norm = Math.hypot(...p)
    t.equal(v.length, 8)
    t.ok(
      p.every((x, i) => Math.abs(x / norm - v[i]) < 1e-5),
      `sentence ${s}: normalize(W · the model's vector)`,
    )
  }
  // What the components hold of the fitted vectors' variance, in float64; more than any 8 coordinate axes hold.
  const fitted = await vectorsOf(model, fit)
  const all = varianceOn(
    fitted,
    Array.from({ length: 32 }, (_, j) => unit(j, 32)),
  )
  t.ok(Math.abs(r.explained - varianceOn(fitted, w) / all) < 1e-5, `explained ${r.explained}`)
  for (const start of [0, 8, 16, 24])
    t.ok(
      varianceOn(
        fitted,
        Array.from({ length: 8 }, (_, j) => unit(start + j, 32)),
      ) /
        all <=
        r.explained,
      `axes ${start}..${start + 7} hold less`,
    )
})

t.test('a plain Hugging Face folder: the sentence-transformers files it lacked, the Dense last', async (t) => {
  const model = await saveTinyModel({ dir: join(dir, 'plain'), seed: 6 })
  const out = join(dir, 'plain-4d')
  const r = await reduceDimensions(model, out, { dim: 4, sentences: fit })
  t.match(r, { from: 32, to: 4, dense: '2_Dense', normalized: false })
  t.same(
    (JSON.parse(readFileSync(join(out, 'modules.json'), 'utf8')) as { type: string }[]).map((m) => m.type.split('.').at(-1)),
    ['Transformer', 'Pooling', 'Dense'],
  )
  const w = await componentsOf(out, '2_Dense', 4, 32)
  const [before, after] = [await vectorsOf(model, probe), await vectorsOf(out, probe)]
  for (const [s, v] of after.entries())
    t.ok(
      w.every((c, i) => Math.abs(dot(c, before[s]) - v[i]) < 1e-5),
      `sentence ${s}: W · the model's vector`,
    )
})

t.test("a Hub model's snapshot: the card's base_model is its id", async (t) => {
  const snapshot = join(dir, 'hub', 'models--org--tiny', 'snapshots', 'a'.repeat(40))
  const model = await saveTinyModel({ dir: snapshot, pooling: 'cls' })
  const out = join(dir, 'hub-6d')
  await reduceDimensions(model, out, { dim: 6, sentences: fit, source: 'corpus.txt' })
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /^---\n[^]*\nbase_model: org\/tiny\n---\n/)
  t.match(card, '`org/tiny` with its vectors reduced from 32 to 6 values')
  t.match(card, 'sentences of corpus.txt')
})

t.test('refusals', async (t) => {
  const model = await saveTinyModel({ dir: join(dir, 'refusals'), pooling: 'cls' })
  const out = join(dir, 'refusals-out')
  await t.rejects(reduceDimensions(model, out, { dim: 32, sentences: fit }), /dim 32 is not below the model's 32 dimensions/)
  await t.rejects(reduceDimensions(model, out, { dim: 8, sentences: fit.slice(0, 5) }), /8 components take at least 8 sentences \(got 5\)/)
  await t.rejects(reduceDimensions(model, join(model, 'inside'), { dim: 8, sentences: fit }), /inside the model's folder/)
  await reduceDimensions(model, out, { dim: 8, sentences: fit })
  await t.rejects(reduceDimensions(model, out, { dim: 4, sentences: fit }), /holds files: give another folder, or overwrite/)
  await t.resolves(reduceDimensions(model, out, { dim: 4, sentences: fit, overwrite: true }))
  t.equal((await vectorsOf(out, ['a']))[0].length, 4, 'overwritten')
  writeFileSync(join(model, 'config_sentence_transformers.json'), JSON.stringify({ truncate_dim: 16 }))
  writePoolingConfig(model, 'cls')
  await t.rejects(reduceDimensions(model, join(dir, 'cut'), { dim: 8, sentences: fit }), /cuts its vectors to 16 values already/)
})

t.test('simcsepp reduce', needsCli, async (t) => {
  const model = await saveTinyModel({ dir: join(dir, 'cli'), pooling: 'mean' })
  const data = join(dir, 'cli.txt')
  writeFileSync(data, fit.join('\n') + '\n')
  const r = runCli(['reduce', '--model', model, '--dim', '6', '--data', data, '--sentences', '40'])
  t.equal(r.status, 0, r.stderr)
  t.equal((await vectorsOf(`${model}-6d`, ['a b']))[0].length, 6, 'DIR-6d beside the model')
  const again = runCli(['reduce', '--model', model, '--dim', '6', '--data', data])
  t.equal(again.status, 1)
  t.match(again.stderr, /holds files/)
  const usage = runCli(['reduce', '--model', model, '--data', data])
  t.equal(usage.status, 2)
  t.match(usage.stderr, /--dim N .* is required/)
})
