// initialParameters (lib/model/init-parallel.ts): the draws split between worker threads give
// initialiseParameters' values bit for bit, whatever the number of threads, and a worker that cannot start
// leaves its range to the calling thread; BertModel.createAsync is create()'s model.
import t from 'tap'
import { BertModel } from '../lib/model/bert.js'
import { namedConfig } from '../lib/model/config.js'
import { initialiseParameters } from '../lib/model/init.js'
import { initialParameters } from '../lib/model/init-parallel.js'
import type * as InitParallelModule from '../lib/model/init-parallel.js'
import { paramLayout } from '../lib/model/layout.js'

const config = namedConfig('tiny', 700)
const layout = paramLayout(config, { mlp: true })
const want = new Float32Array(layout.total)
initialiseParameters(want, layout, config, 9)

const differing = (a: Float32Array, b: Float32Array) => {
  let n = 0
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++
  return n
}

t.test('any number of threads: the sequential values', async (t) => {
  for (const threads of [1, 3]) {
    const got = await initialParameters(layout, config, 9, threads, 1000)
    t.equal(got.length, want.length)
    t.equal(differing(got, want), 0, `${threads} threads: none of ${want.length} values differs`)
  }
  const few = await initialParameters(layout, config, 9, 8) // too few draws for a second thread: drawn here
  t.notOk(few.buffer instanceof SharedArrayBuffer, 'small models are not worth a worker')
  t.equal(differing(few, want), 0)
})

t.test('a worker that cannot start: its range is drawn by the caller', async (t) => {
  const { initialParameters: withoutWorkers } = await t.mockImport<typeof InitParallelModule>('../lib/model/init-parallel.js', {
    'node:worker_threads': {
      Worker: class {
        constructor() {
          throw new Error('no threads here')
        }
      },
    },
  })
  const got = await withoutWorkers(layout, config, 9, 4, 1000)
  t.equal(differing(got, want), 0)
})

t.test('BertModel.createAsync: the model create() makes', async (t) => {
  const a = BertModel.create(config, { mlp: true, seed: 3 })
  const b = await BertModel.createAsync(config, { mlp: true, seed: 3 })
  t.teardown(() => {
    a.dispose()
    b.dispose()
  })
  t.same(b.config, a.config)
  t.equal(differing(b.params.toFloat32Array(), a.params.toFloat32Array()), 0)
  await t.rejects(BertModel.createAsync({ ...config, numHiddenLayers: 1e6 }), /BertModel\.createAsync/)
})
