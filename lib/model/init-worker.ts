// One thread of initialParameters (init-parallel.ts): draws its range of the initialisation's stream into the
// shared parameter buffer, then says so (or why not).
import { parentPort, workerData } from 'node:worker_threads'
import { fillDraws, type DrawSegments } from './init.js'

export interface InitWorkerData {
  buffer: SharedArrayBuffer
  segments: DrawSegments
  scale: number
  seed: number
  from: number
  to: number
}

const d = workerData as InitWorkerData
try {
  fillDraws(new Float32Array(d.buffer), d.segments, d.scale, d.seed, d.from, d.to)
  parentPort!.postMessage({ ok: true })
} catch (e) {
  parentPort!.postMessage({ ok: false, message: (e as Error).message })
}
