// One flat allocation carved into the views of a pass of a batch shape, grown only when a larger batch arrives (no
// native allocation inside a training step once warm): the activation memory of BERT's passes (activations.ts) and
// of ModernBERT's (modernbert.ts), each carving its own views.
import { Tensor, type Device } from '../tensor.js'

/** A tensor's dimension may be at most 2^31 - 1 (native/args.h). */
const MAX_DIM = 2 ** 31 - 1

/**
 * The shape of a buffer of at least `floats` floats: [floats] when that is one dimension's worth, else rows of
 * 2^20 (BERT-base training at 1536 rows of 32 tokens takes 5.3e9 floats, 21 GB). Views take flat offsets either way.
 */
export function arenaShape(floats: number, maxDim = MAX_DIM): number[] {
  if (floats <= maxDim) return [floats]
  const row = Math.min(2 ** 20, maxDim)
  return [Math.ceil(floats / row), row]
}

/**
 * Every view starts at a multiple of this many floats (64 bytes), whatever the sizes of the views before it: a view of
 * an odd float count (a LayerNorm's mean at an odd B x T, Bf16Values of an odd element count) would otherwise leave
 * every later view 4- or 8-byte aligned, which turns off the 16-byte loads of the CUDA row kernels and the tensor-core
 * attention and narrows cuBLASLt's algorithms for the rest of the pass.
 */
export const VIEW_ALIGN_FLOATS = 16

/** The floats a view of n floats takes in an arena: n, rounded up to VIEW_ALIGN_FLOATS (a count's terms use it). */
export function viewFloats(n: number): number {
  return Math.ceil(n / VIEW_ALIGN_FLOATS) * VIEW_ALIGN_FLOATS
}

/** Carves the views of a [B, T] pass out of the buffer, in order, with take(shape). */
export type Carve<A> = (take: (shape: number[]) => Tensor, B: number, T: number, training: boolean) => A

export class ViewArena<A> {
  private buffer: Tensor | null = null
  private capacity = 0
  /** Incremented whenever the buffer is replaced: views (and step graphs) of an older one are stale. */
  generation = 0
  /** The last acquire's views: the next one of the same shape returns them (BERT-base has ~170 views per batch). */
  private last: { B: number; T: number; training: boolean; generation: number; acts: A } | null = null

  constructor(
    private readonly device: Device,
    /** Floats the views of a [B, T] pass take (what carve takes, counted without carving; each view's viewFloats). */
    private readonly floats: (B: number, T: number, training: boolean) => number,
    private readonly carve: Carve<A>,
    /** Names the arena in the error of a count that disagrees with the carving. */
    private readonly name: string,
    /** The largest dimension of the buffer's shape (arenaShape; tests set a small one). */
    private readonly maxDim = MAX_DIM,
  ) {}

  /** Bytes the arena holds (its largest batch so far). */
  get bytes(): number {
    return this.capacity * 4
  }

  /** Views for a batch of shape [B, T]; reuses the buffer when it is large enough. */
  acquire(B: number, T: number, training: boolean): A {
    const need = this.floats(B, T, training)
    if (need > this.capacity) {
      this.buffer?.dispose()
      const shape = arenaShape(need, this.maxDim)
      this.buffer = Tensor.zeros(shape, this.device)
      this.capacity = shape.reduce((a, b) => a * b, 1)
      this.generation++
    }
    const l = this.last
    if (l && l.B === B && l.T === T && l.training === training && l.generation === this.generation) return l.acts
    const buf = this.buffer!
    let offset = 0
    const take = (shape: number[]) => {
      const t = buf.view(offset, shape)
      offset += viewFloats(shape.reduce((a, b) => a * b, 1))
      return t
    }
    const acts = this.carve(take, B, T, training)
    if (offset !== need) throw new Error(`${this.name}: views take ${offset} floats, its count was ${need}`)
    this.last = { B, T, training, generation: this.generation, acts }
    return acts
  }

  dispose(): void {
    this.buffer?.dispose()
    this.buffer = null
    this.capacity = 0
    this.last = null
  }
}
