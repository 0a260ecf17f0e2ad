// A model's initial weights drawn by several threads: the Gaussian draws are split into equal ranges, each
// drawn by a worker thread from its place in the stream (the generator jumps there: xoshiro128.ts) into one
// shared buffer, the first by this thread meanwhile. The values are initialiseParameters', bit for bit: only
// who draws which range changes. Drawing is V8's software log, sin and cos, about 50 ns a value, so bert-base's
// 110 M take 5.7 s on one thread of the development VM. A range a worker fails to draw (it could not start,
// say) is drawn here.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { BertConfig } from './config.js'
import { drawSegments, fillConstants, fillDraws, totalDraws } from './init.js'
import type { InitWorkerData } from './init-worker.js'
import type { ParamLayout } from './layout.js'

/** Below this many draws a thread, starting workers costs more than it saves. */
export const MIN_DRAWS_PER_THREAD = 4_000_000

/** The initial parameters of `layout` (initialiseParameters' values), drawn by up to `threads` threads. */
export async function initialParameters(
  layout: ParamLayout,
  config: BertConfig,
  seed: number,
  threads: number,
  minDrawsPerThread = MIN_DRAWS_PER_THREAD,
): Promise<Float32Array> {
  const segments = drawSegments(layout)
  const total = totalDraws(segments)
  const ways = Math.max(1, Math.min(Math.floor(threads), Math.floor(total / Math.max(1, minDrawsPerThread))))
  const entry = ways > 1 ? workerEntry() : null
  if (!entry) {
    const flat = new Float32Array(layout.total)
    fillDraws(flat, segments, config.initializerRange, seed, 0, total)
    fillConstants(flat, layout, config)
    return flat
  }
  const buffer = new SharedArrayBuffer(4 * layout.total)
  const flat = new Float32Array(buffer)
  const bound = (i: number) => Math.floor((i * total) / ways)
  const drawn = Array.from({ length: ways - 1 }, (_, w) => {
    const data: InitWorkerData = { buffer, segments, scale: config.initializerRange, seed, from: bound(w + 1), to: bound(w + 2) }
    return drawnBy(entry, data).catch(() => fillDraws(flat, segments, data.scale, seed, data.from, data.to))
  })
  fillDraws(flat, segments, config.initializerRange, seed, 0, bound(1))
  await Promise.all(drawn)
  fillConstants(flat, layout, config)
  return flat
}

/** Resolves once a worker has drawn `data`'s range; rejects when it could not. */
function drawnBy(entry: { file: URL; execArgv?: string[] }, data: InitWorkerData): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let worker: Worker
    try {
      worker = new Worker(entry.file, { workerData: data, ...(entry.execArgv ? { execArgv: entry.execArgv } : {}) })
    } catch (e) {
      reject(e as Error)
      return
    }
    worker.once('message', (m: { ok: boolean; message?: string }) => (m.ok ? resolve() : reject(new Error(m.message))))
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`the worker exited with code ${code}`))) // after a message: ignored
  })
}

/** The worker script beside this module (init-worker.js; init-worker.ts through the parent's loaders in tests). */
function workerEntry(): { file: URL; execArgv?: string[] } | null {
  const js = new URL('./init-worker.js', import.meta.url)
  if (existsSync(fileURLToPath(js))) return { file: js }
  const ts = new URL('./init-worker.ts', import.meta.url)
  if (existsSync(fileURLToPath(ts))) return { file: ts, execArgv: process.execArgv }
  return null
}
