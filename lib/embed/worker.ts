// The SentenceEncoder's worker thread: owns the model and runs every native op, off the caller's
// event loop. Requests run one at a time in arrival order; each batch's vectors go back as soon as
// they are computed, their buffer transferred (not copied).
import { parentPort, workerData } from 'node:worker_threads'
import { EmbeddingEngine } from './engine.js'
import type { FromWorker, InitData, RunOptions, ToWorker } from './protocol.js'

const port = parentPort
if (!port) throw new Error('simcsepp: lib/embed/worker is meant to run in a worker thread (SentenceEncoder starts it)')

const send = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer)
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

let engine: EmbeddingEngine | null = null
let closing = false
let queue: Promise<void> = Promise.resolve()
const pending = new Map<number, string[]>()

async function run(id: number, sentences: string[], options: RunOptions): Promise<void> {
  if (closing || !engine) return send({ type: 'error', id, message: 'SentenceEncoder: the encoder is closed' })
  const e = engine
  try {
    await e.run(
      sentences,
      options,
      (indices, vectors) => {
        send({ type: 'batch', id, indices, vectors }, [indices.buffer as ArrayBuffer, vectors.buffer as ArrayBuffer])
      },
      async () => {
        await nextTurn() // lets 'close' and new requests in between batches
        if (closing) throw new Error('SentenceEncoder: closed while encoding')
      },
    )
    send({ type: 'done', id })
  } catch (err) {
    send({ type: 'error', id, message: (err as Error).message ?? String(err) })
  }
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'encode') {
    const got = pending.get(m.id) ?? []
    for (const s of m.sentences) got.push(s)
    if (!m.last) return void pending.set(m.id, got)
    pending.delete(m.id)
    queue = queue.then(() => run(m.id, got, m.options))
  } else if (m.type === 'close') {
    closing = true
    queue = queue.then(() => {
      engine?.dispose()
      engine = null
      send({ type: 'closed' })
    })
  }
})

const init = workerData as InitData
EmbeddingEngine.load(init.dir, init.device, init.precision, undefined, init.dense).then(
  (e) => {
    if (closing) return e.dispose()
    engine = e
    send({ type: 'ready', dimension: e.dimension, device: e.device, precision: e.precision, note: e.note, precisionNote: e.precisionNote })
  },
  (err) => send({ type: 'load-error', message: (err as Error).message ?? String(err) }),
)
