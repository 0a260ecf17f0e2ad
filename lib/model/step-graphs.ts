// CUDA graph sessions (kernels/graph_capture.cu): a training step's work captured once and replayed as
// one launch. Launching the forward of BERT-base is ~200 kernel launches, each a call from JavaScript
// into the addon; the backward about as many. Two users: TrainingStep (lib/train/step.ts) captures a whole
// step (pass 'step': forward, loss, backward, clipping, AdamW, whose results it reads back with the
// replay's reader), and BertModel's graph option captures its forward and backward passes.
//
// Per padded batch shape (and whatever else the caller puts in the key), each pass runs eagerly the first
// time (so that every buffer it needs is allocated and cuBLASLt has planned its products), is captured
// the second time and replayed from then on. What changes between steps reaches a replay through device
// memory: the token ids, positions, types, attention mask and keepRows are bound to the session (copied
// into its buffers before each replay), the dropout masks' Philox offsets shift by
// (step - captured step) · sites, and a captured AdamW gets each replay's learning rate and step. The
// graphs address the activation arena: a new arena (a larger batch) makes them stale, and they are dropped.
//
// A replay does not wait for the GPU: it returns a reader of what the launch left for the host (its
// results, and the readback tensors' contents as they were right after it). The sessions of one StepGraphs
// share a stream, so replays run in launch order, and a divergence flag: a step whose losses or gradient
// norm are not finite makes every captured AdamW skip its update until a launch clears the flag
// (clearSkip), which the caller does once it has read every earlier launch. So a training loop may launch
// step t+1 before it reads step t (lib/train/step.ts).
import { addon, type GraphReadback, type GraphSessionHandle } from '../native.js'
import { nativeOf, type Tensor } from '../tensor.js'

/** The host arrays a pass's ops read: ids, positions, types, mask, keepRows when present, a step's cosent scores. */
export type BoundArrays = (Int32Array | Uint8Array | Float32Array)[]

// 'embed': an inference forward (no backward: its session gets no embedding-gradient buffer).
type Pass = 'forward' | 'backward' | 'step' | 'embed'

interface Captured {
  index: number
  step: number
}

/** How a replay runs and what it reads back (all optional). */
export interface ReplayOptions {
  /** A captured AdamW update's learning rate and (1-based) optimizer step. */
  lr?: number
  adamStep?: number
  /** Tensors (CUDA) whose contents the launch copies back after the replay; asked after any capture. */
  readback?: () => Tensor[]
  /** Clear the divergence flag before this replay (default true: no earlier launch is still unread). */
  clearSkip?: boolean
}

interface Entry {
  session: GraphSessionHandle
  warmed: Set<Pass>
  graphs: Map<Pass, Captured>
}

/**
 * f() with SIMCSEPP_CUDA_GRAPHS=0, restored after it (after the promise settles when f returns one): for
 * what reads the setting when made (a TrainingStep; a SentenceEncoder's worker takes a copy of the
 * environment when it starts).
 */
export function withoutCudaGraphs<T>(f: () => T): T {
  const before = process.env.SIMCSEPP_CUDA_GRAPHS
  const restore = () => {
    if (before === undefined) delete process.env.SIMCSEPP_CUDA_GRAPHS
    else process.env.SIMCSEPP_CUDA_GRAPHS = before
  }
  process.env.SIMCSEPP_CUDA_GRAPHS = '0'
  let r: T
  try {
    r = f()
  } catch (e) {
    restore()
    throw e
  }
  if (r instanceof Promise) return r.finally(restore) as T
  restore()
  return r
}

export class StepGraphs {
  private readonly entries = new Map<string, Entry>()
  private generation = -1
  /** Passes captured and replayed so far (replays include the launch right after a capture). */
  captures = 0
  replays = 0

  /** @param sites dropout sites per step (the Philox offset of site s at step t is t · sites + s). */
  constructor(private readonly sites: number) {}

  /**
   * Runs one pass for shape `key`: `ops()` eagerly (first time), or captured and replayed. `generation`
   * is the activation arena's; `step` the training step whose dropout masks the pass draws.
   */
  run(key: string, generation: number, pass: Pass, arrays: BoundArrays, step: number, ops: () => void): void {
    if (!this.warm(key, generation, pass)) {
      ops()
      this.markWarm(key, pass, arrays)
    } else this.replay(key, pass, arrays, step, ops)
  }

  /** Whether `run`/`warm` would replay `pass` of shape `key` (no side effects: a stale arena frees nothing here). */
  isWarm(key: string, generation: number, pass: Pass): boolean {
    return generation === this.generation && (this.entries.get(key)?.warmed.has(pass) ?? false)
  }

  /**
   * Whether `pass` of shape `key` ran eagerly once since the arena (`generation`) last changed. A new
   * arena frees every session: read their launches first.
   */
  warm(key: string, generation: number, pass: Pass): boolean {
    if (generation !== this.generation) {
      this.clear()
      this.generation = generation
    }
    return this.entries.get(key)?.warmed.has(pass) ?? false
  }

  /** Whether `pass` of shape `key` has been captured (its next run replays that graph). */
  isCaptured(key: string, pass: Pass): boolean {
    return this.entries.get(key)?.graphs.has(pass) ?? false
  }

  /** Frees shape `key`'s session and graphs (read its launches first): it runs eagerly, then is captured anew. */
  forget(key: string): void {
    const e = this.entries.get(key)
    if (!e) return
    addon.graphSessionFree(e.session)
    this.entries.delete(key)
  }

  /** Records that `pass` of shape `key` ran eagerly (with these arrays' sizes): the next run captures it. */
  markWarm(key: string, pass: Pass, arrays: BoundArrays): void {
    let e = this.entries.get(key)
    if (!e) {
      // The first live session is the peer of the others: one group.
      const peer = this.entries.values().next().value?.session
      e = {
        session: addon.graphSession(
          arrays.map((a) => a.byteLength),
          pass === 'embed' ? 1 : arrays[0].length,
          peer,
        ),
        warmed: new Set(),
        graphs: new Map(),
      }
      this.entries.set(key, e)
    }
    e.warmed.add(pass)
  }

  /**
   * Replays a warm `pass` (capturing what `record` launches the first time), without waiting for it.
   * Returns the reader of what the launch left for the host (graphResults: waits for that launch only).
   */
  replay(key: string, pass: Pass, arrays: BoundArrays, step: number, record: () => void, o: ReplayOptions = {}): () => GraphReadback {
    const e = this.entries.get(key)
    if (!e?.warmed.has(pass)) throw new Error(`StepGraphs.replay: ${pass} of ${key} has not run eagerly yet`)
    let g = e.graphs.get(pass)
    if (!g) {
      g = { index: addon.graphCapture(e.session, arrays, record), step }
      e.graphs.set(pass, g)
      this.captures++
    }
    const delta = BigInt.asUintN(64, BigInt(step - g.step) * BigInt(this.sites))
    const readback = (o.readback?.() ?? []).map((t, i) => nativeOf(t, `readback[${i}]`))
    const ticket = addon.graphLaunch(e.session, g.index, arrays, delta, o.lr ?? 0, o.adamStep ?? 1, readback, o.clearSkip ?? true)
    this.replays++
    const { session } = e
    return () => addon.graphResults(session, ticket)
  }

  /** Frees every session (and so every graph). */
  clear(): void {
    for (const e of this.entries.values()) addon.graphSessionFree(e.session)
    this.entries.clear()
  }
}
