// CUDA graphs of the training step's encoder passes (kernels/graph_capture.cu). Launching the forward of
// BERT-base is ~200 kernel launches and as many calls from JavaScript into the addon; the backward about
// as many. A graph replays each pass as one launch.
//
// Per padded batch shape (and pooling, head, per-row dropout switch), each pass runs eagerly the first
// time (so that every buffer it needs is allocated and cuBLASLt has planned its products), is captured
// the second time and replayed from then on. What changes between steps reaches a replay through device
// memory: the token ids, positions, types, attention mask and keepRows are bound to the session (copied
// into its buffers before each replay), and the dropout masks' Philox offsets shift by
// (step - captured step) · sites. The graphs address the activation arena: a new arena (a larger batch)
// makes them stale, and they are dropped.
import { addon, type GraphSessionHandle } from '../native.js'

/** The host arrays a pass's ops read: ids, positions, types, mask, and keepRows when present. */
export type BoundArrays = (Int32Array | Uint8Array)[]

type Pass = 'forward' | 'backward'

interface Captured {
  index: number
  step: number
}

interface Entry {
  session: GraphSessionHandle
  warmed: Set<Pass>
  graphs: Map<Pass, Captured>
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
    if (generation !== this.generation) {
      this.clear()
      this.generation = generation
    }
    let e = this.entries.get(key)
    if (!e) {
      const rows = arrays[0].length
      e = {
        session: addon.graphSession(
          arrays.map((a) => a.byteLength),
          rows,
        ),
        warmed: new Set(),
        graphs: new Map(),
      }
      this.entries.set(key, e)
    }
    if (!e.warmed.has(pass)) {
      ops()
      e.warmed.add(pass)
      return
    }
    let g = e.graphs.get(pass)
    if (!g) {
      g = { index: addon.graphCapture(e.session, arrays, ops), step }
      e.graphs.set(pass, g)
      this.captures++
    }
    addon.graphLaunch(e.session, g.index, arrays, BigInt.asUintN(64, BigInt(step - g.step) * BigInt(this.sites)))
    this.replays++
  }

  /** Frees every session (and so every graph). */
  clear(): void {
    for (const e of this.entries.values()) addon.graphSessionFree(e.session)
    this.entries.clear()
  }
}
