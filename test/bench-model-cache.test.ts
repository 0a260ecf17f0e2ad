// benchModel (lib/bench/model-cache.ts): the models BertModel.create makes, bit for bit, whether drawn or
// copied from the kept initial weights; another config, head or seed is drawn anew.
import t from 'tap'
import { benchModel } from '../lib/bench/model-cache.js'
import { BertModel } from '../lib/model/bert.js'
import { namedConfig } from '../lib/model/config.js'

const sameBits = (a: Float32Array, b: Float32Array) => {
  if (a.length !== b.length) return false
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  return x.every((v, i) => v === y[i])
}

t.test('drawn once, copied after: every model equals create()', async (t) => {
  const config = namedConfig('tiny', 500)
  const cases: [string, { mlp?: boolean; seed?: number; precision?: 'fp32' | 'bf16' }][] = [
    ['first', { mlp: true, seed: 1 }],
    ['again (copied)', { mlp: true, seed: 1 }],
    ['again, bf16 products (copied)', { mlp: true, seed: 1, precision: 'bf16' }],
    ['another seed', { mlp: true, seed: 2 }],
    ['no head', { seed: 2 }],
    ['the first again', { mlp: true, seed: 1 }],
  ]
  for (const [what, options] of cases) {
    const got = await benchModel(config, options)
    const want = BertModel.create(config, options)
    t.equal(got.precision, want.precision, `${what}: precision`)
    t.ok(sameBits(got.params.toFloat32Array(), want.params.toFloat32Array()), `${what}: the parameters of create()`)
    got.dispose()
    want.dispose()
  }
})
