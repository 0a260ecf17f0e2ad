// A pretrained model loaded with some of its encoder layers (BertModel.load's keepLayers, train()'s keepLayers,
// `--keep-layers`; sentence-transformers' model_distillation example's layers_to_keep): the kept layers' weights
// exactly, renumbered from 0, the embeddings and the pooler as they were; saved as a model of that many layers that
// loads again as it is; BERT's names and DistilBERT's; refusals; a training run whose output is the smaller model,
// resumed with the same layers and refused with others.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BertModel } from '../lib/model/bert.js'
import { checkKeepLayers } from '../lib/model/keep-layers.js'
import { train } from '../lib/train/train.js'
import { saveTinyModel, tinyConfig } from './helpers/encoder-tiny-model.js'
import { needsCli, runCli, tempDir, writeSentences } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-keep-layers-')

/** Every parameter of a model by name: its values. */
const paramsOf = (m: BertModel) => new Map(m.layout.entries.map((e) => [e.name, m.param(e.name).toFloat32Array()]))

/** Our name of layer `i`'s parameter `rest`. */
const layerName = (name: string, from: number, to: number) => name.replace(`encoder.layer.${from}.`, `encoder.layer.${to}.`)

for (const modelType of ['bert', 'distilbert'] as const) {
  t.test(`${modelType}: the kept layers' weights, renumbered; saved and loaded again as a smaller model`, async (t) => {
    const config = modelType === 'bert' ? { numHiddenLayers: 4 } : { numHiddenLayers: 4, modelType, typeVocabSize: 0 }
    const src = await saveTinyModel({ dir: join(dir, `${modelType}-4`), config, seed: 3 })
    const full = await BertModel.load(src)
    const kept = await BertModel.load(src, { keepLayers: [1, 3] })
    t.equal(kept.config.numHiddenLayers, 2)
    const want = paramsOf(full)
    const got = paramsOf(kept)
    let layers = 0
    for (const [name, values] of got) {
      const m = /^encoder\.layer\.(\d+)\./.exec(name)
      const source = m ? layerName(name, Number(m[1]), [1, 3][Number(m[1])]) : name
      t.ok(
        want.get(source)!.every((v, i) => v === values[i]),
        `${name} is ${source}`,
      )
      if (m) layers++
    }
    t.equal(
      layers,
      [...want.keys()].filter((n) => /^encoder\.layer\.[13]\./.test(n)).length,
      'every tensor of layers 1 and 3, no other layer',
    )
    t.ok(
      [...want.keys()].filter((n) => !n.startsWith('encoder.layer.')).every((n) => got.has(n)),
      'the embeddings (and pooler) kept',
    )

    // All the layers in order: the model itself (its vectors too).
    const all = await BertModel.load(src, { keepLayers: [0, 1, 2, 3] })
    const batch = {
      inputIds: Int32Array.from([2, 9, 12, 3, 2, 14, 3, 0]),
      attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 0]),
      shape: [2, 4],
    }
    const [a, b] = [full, all].map((m) => m.embed(batch, 'mean'))
    t.same(b.toFloat32Array(), a.toFloat32Array(), 'keepLayers [0, 1, 2, 3]: the same vectors')

    const out = join(dir, `${modelType}-kept`)
    await kept.save(out)
    const config2 = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>
    t.equal(config2[modelType === 'bert' ? 'num_hidden_layers' : 'n_layers'], 2, "config.json: the kept layers' count")
    const again = await BertModel.load(out)
    const reloaded = paramsOf(again)
    t.ok(
      [...got].every(([n, v]) => reloaded.get(n)!.every((x, i) => x === v[i])),
      'loaded again: the same parameters',
    )
    const [c, d] = [kept, again].map((m) => m.embed(batch, 'mean'))
    t.same(d.toFloat32Array(), c.toFloat32Array(), 'and the same vectors')
    for (const x of [a, b, c, d]) x.dispose()
    for (const m of [full, kept, all, again]) m.dispose()
  })
}

t.test('refusals', async (t) => {
  const c = tinyConfig({ numHiddenLayers: 4 })
  for (const bad of [[], [2, 1], [1, 1], [4], [-1], [0.5], 'x'])
    t.throws(() => checkKeepLayers(bad, c, 'm/config.json'), /keepLayers must be/, JSON.stringify(bad))
  t.throws(() => checkKeepLayers([2, 1], c, 'm/config.json'), /the 4 layers of m\/config\.json, in increasing order, each in \[0, 3\]/)
  t.throws(() => checkKeepLayers([0], tinyConfig({ modelType: 'modernbert' }), 'm'), /keepLayers does not apply to ModernBERT/)
  t.throws(() => BertModel.create(c, { keepLayers: [0] }), /keepLayers applies to BertModel\.load/)
  const src = await saveTinyModel({ dir: join(dir, 'refusals'), config: { numHiddenLayers: 2 } })
  await t.rejects(BertModel.load(src, { keepLayers: [0, 2] }), /distinct indices of the 2 layers of .*config\.json/)
  const data = writeSentences(join(dir, 'refusals.txt'), 16)
  await t.rejects(
    train({ config: 'tiny', data, out: join(dir, 'no-model'), keepLayers: [0], steps: 1 }),
    /keepLayers applies to model \(a pretrained model's layers\)/,
  )
})

t.test('train({ keepLayers }): the output is the smaller model; a resume keeps the layers, and refuses others', async (t) => {
  const src = await saveTinyModel({ dir: join(dir, 'train-src'), config: { numHiddenLayers: 3 }, seed: 5 })
  const data = writeSentences(join(dir, 'data.txt'), 32)
  const out = join(dir, 'train-out')
  const messages: string[] = []
  const run = {
    model: src,
    data,
    device: 'cpu' as const,
    batchSize: 8,
    maxLen: 12,
    evalEvery: 0,
    saveEvery: 1,
    seed: 2,
    keepLayers: [0, 2],
  }
  await train({ ...run, steps: 2, out }, { onMessage: (m) => void messages.push(m) })
  t.ok(
    messages.some((m) => m.includes(`${src}: its layers 0, 2 kept (of 3), as layers 0-1`)),
    'said',
  )
  const saved = await BertModel.load(out)
  t.equal(saved.config.numHiddenLayers, 2, 'the output: two layers')
  t.match(
    readFileSync(join(out, 'README.md'), 'utf8'),
    `- Base model: \`train-src\` (${src}), its layers 0, 2 kept (keepLayers)`,
    'the card says so',
  )
  saved.dispose()
  // Interrupted after step 2 of 4 and resumed: the model an uninterrupted run of the same layers trains.
  const cut = join(dir, 'train-cut')
  const stop = new AbortController()
  const first = await train({ ...run, steps: 4, out: cut }, { signal: stop.signal, onStep: (s) => void (s.step === 2 && stop.abort()) })
  t.same([first.interrupted, first.steps], [true, 2], 'stopped after step 2')
  await train({ ...run, steps: 4, out: cut, resume: cut })
  const whole = join(dir, 'train-whole')
  await train({ ...run, steps: 4, out: whole })
  const [resumed, straight] = await Promise.all([BertModel.load(cut), BertModel.load(whole)])
  const want = paramsOf(straight)
  t.ok(
    [...paramsOf(resumed)].every(([n, v]) => v.every((x, k) => x === want.get(n)![k])),
    'resumed: the uninterrupted run’s weights, bit for bit',
  )
  resumed.dispose()
  straight.dispose()
  await t.rejects(
    train({ ...run, keepLayers: [0, 1], steps: 4, out: cut, resume: cut }),
    /option keepLayers was \[0,2\] in the checkpointed run, now \[0,1\]/,
    'other layers refused on resume',
  )
})

t.test('simcsepp train --keep-layers', needsCli, async (t) => {
  const src = await saveTinyModel({ dir: join(dir, 'cli-src'), config: { numHiddenLayers: 3 } })
  const data = writeSentences(join(dir, 'cli.txt'), 16)
  const out = join(dir, 'cli-out')
  const args = ['train', '--model', src, '--data', data, '--steps', '1', '--batch-size', '8', '--max-len', '12', '--device', 'cpu']
  const r = runCli([...args, '--keep-layers', '2', '--out', out])
  t.equal(r.status, 0, r.stderr)
  t.equal((JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { num_hidden_layers: number }).num_hidden_layers, 1)
  const bad = runCli([...args, '--keep-layers', '1,x', '--out', join(dir, 'cli-bad')])
  t.equal(bad.status, 2, 'a usage error')
  t.match(bad.stderr, /--keep-layers/)
})
