// Model folders as users have them: sharded safetensors (model.safetensors.index.json naming the shard
// of each tensor) load into the same weights and vectors as the single file, wherever a model folder is
// read (BertModel.load, SentenceEncoder.load, exportOnnx); a missing shard or a tensor missing from its
// shard is a clear Error; a folder with only PyTorch weights says how to convert them.
import t from 'tap'
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SentenceEncoder } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { readSafetensors, writeSafetensors } from '../lib/safetensors.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'
import { tempDir } from './helpers/train-corpus.js'

const tmp = () => tempDir('simcsepp-shards-')

const shardName = (i: number, n: number) => `model-0000${i + 1}-of-0000${n}.safetensors`

/** Splits dir's model.safetensors into n shards round-robin by name, writes the index, removes the file. */
async function shard(dir: string, n: number): Promise<Record<string, string>> {
  const tensors = await readSafetensors(join(dir, 'model.safetensors'))
  const names = [...tensors.keys()].sort()
  const weightMap: Record<string, string> = {}
  for (let i = 0; i < n; i++) {
    const mine = names.filter((_, k) => k % n === i)
    await writeSafetensors(
      join(dir, shardName(i, n)),
      new Map(mine.map((name) => [name, { shape: tensors.get(name)!.shape, data: tensors.get(name)!.data }])),
    )
    for (const name of mine) weightMap[name] = shardName(i, n)
  }
  const total = names.reduce((s, name) => s + 4 * tensors.get(name)!.data.length, 0)
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }))
  unlinkSync(join(dir, 'model.safetensors'))
  return weightMap
}

t.test('a model split into 2 and 3 shards: the same weights, vectors and ONNX export as the single file', async (t) => {
  const single = await saveTinyModel({ dir: tmp(), pooling: 'mean', seed: 9 })
  const ref = await BertModel.load(single)
  const refParams = ref.params.toFloat32Array()
  ref.dispose()
  const texts = sentences(6, 3)
  const enc = await SentenceEncoder.load(single, { device: 'cpu' })
  const refVectors = await enc.encode(texts)
  await enc.close()
  const refOnnx = readFileSync((await exportOnnx(single, join(tmp(), 'onnx'))).onnxFile)

  for (const n of [2, 3]) {
    const dir = await saveTinyModel({ dir: tmp(), pooling: 'mean', seed: 9 })
    const map = await shard(dir, n)
    t.equal(new Set(Object.values(map)).size, n, `${n} shards written`)
    const m = await BertModel.load(dir)
    t.same(m.params.toFloat32Array(), refParams, `${n} shards: BertModel.load gives the same parameters, bit for bit`)
    m.dispose()
    const e = await SentenceEncoder.load(dir, { device: 'cpu' })
    t.same(await e.encode(texts), refVectors, `${n} shards: SentenceEncoder gives the same vectors`)
    await e.close()
    const onnx = readFileSync((await exportOnnx(dir, join(tmp(), 'onnx'))).onnxFile)
    t.ok(onnx.equals(refOnnx), `${n} shards: the same ONNX file, byte for byte`)
  }
})

t.test('a missing shard, a tensor its shard lacks, a bad weight_map: Errors naming the index and the shard', async (t) => {
  const dir = await saveTinyModel({ dir: tmp(), seed: 2 })
  const map = await shard(dir, 3)
  const index = join(dir, 'model.safetensors.index.json')
  renameSync(join(dir, shardName(1, 3)), join(dir, 'moved.safetensors'))
  const count = Object.values(map).filter((f) => f === shardName(1, 3)).length
  const missingShard = new RegExp(
    `model\\.safetensors\\.index\\.json: shard model-00002-of-00003\\.safetensors \\(${count} tensors\\) is missing`,
  )
  await t.rejects(BertModel.load(dir), missingShard)
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), missingShard)
  renameSync(join(dir, 'moved.safetensors'), join(dir, shardName(1, 3)))

  const name = Object.keys(map).find((k) => map[k] === shardName(0, 3))!
  writeFileSync(index, JSON.stringify({ weight_map: { ...map, [name]: shardName(2, 3) } }))
  await t.rejects(
    BertModel.load(dir),
    new RegExp(`index\\.json maps tensor '${name.replace(/\./g, '\\.')}' to model-00003-of-00003\\.safetensors, which does not hold it`),
  )
  writeFileSync(index, JSON.stringify({ weight_map: { ...map, [name]: '../elsewhere.safetensors' } }))
  await t.rejects(BertModel.load(dir), /must name a \.safetensors file in the same folder, got "\.\.\/elsewhere\.safetensors"/)
  writeFileSync(index, JSON.stringify({ weights: map }))
  await t.rejects(BertModel.load(dir), /index\.json: expected an object with a "weight_map" object/)
  writeFileSync(index, JSON.stringify({ weight_map: {} }))
  await t.rejects(BertModel.load(dir), /weight_map is empty/)
})

t.test('PyTorch weights that are not a PyTorch file: every loader names the file', async (t) => {
  // (pytorch_model.bin is read: test/torch-checkpoint.test.ts loads the files torch.save writes)
  const dir = await saveTinyModel({ dir: tmp(), seed: 2 })
  unlinkSync(join(dir, 'model.safetensors'))
  writeFileSync(join(dir, 'pytorch_model.bin'), Buffer.alloc(1 << 20, 'x')) // as large as the weights, garbage
  const named = /pytorch_model\.bin: neither a zip archive nor a legacy torch\.save file/
  await t.rejects(BertModel.load(dir), named, 'BertModel.load')
  await t.rejects(SentenceEncoder.load(dir, { device: 'cpu' }), named, 'SentenceEncoder.load')
  await t.rejects(exportOnnx(dir, join(tmp(), 'x')), named, 'exportOnnx')
  unlinkSync(join(dir, 'pytorch_model.bin'))
  writeFileSync(
    join(dir, 'pytorch_model.bin.index.json'),
    JSON.stringify({ weight_map: { 'embeddings.word_embeddings.weight': 'x.safetensors' } }),
  )
  await t.rejects(
    BertModel.load(dir),
    /pytorch_model\.bin\.index\.json: weight_map\["embeddings\.word_embeddings\.weight"\] must name a \.bin file/,
  )
  unlinkSync(join(dir, 'pytorch_model.bin.index.json'))
  await t.rejects(BertModel.load(dir), /no model\.safetensors \(or pytorch_model\.bin\)/, 'no weights at all')
})
