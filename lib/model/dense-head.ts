// A sentence-transformers model's Dense modules (LaBSE's, the distiluse family's: y = f(W·x + b) after the pooling,
// f = tanh or the identity) as trained parameters of a BertModel: their weights are entries of the model's flat
// buffer (layout.ts: dense.{i}.linear.weight and .bias, after the encoder's), so AdamW, clipping, checkpoints and
// the ranks' gradient sums take them with the rest; their forward and backward run the linear and tanh ops on the
// model's device and precision. They are saved as module folders of their own (DenseHead.save), as
// sentence-transformers saves them, not in model.safetensors.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import * as ops from '../ops.js'
import type { Precision } from '../native.js'
import { Tensor, type Device } from '../tensor.js'
import { writeSafetensors } from '../safetensors.js'
import { writeFileAtomic } from '../util/atomic-write.js'

/** A Dense module's shape and activation (lib/embed/dense.ts's DenseConfig without its folder). */
export interface DenseShape {
  inFeatures: number
  outFeatures: number
  bias: boolean
  activation: 'tanh' | 'identity'
}

/** The layout's names of Dense module i's parameters. */
export const denseWeightName = (i: number) => `dense.${i}.linear.weight`
export const denseBiasName = (i: number) => `dense.${i}.linear.bias`

/** The torch classes a Dense module's config.json names as its activation_function (lib/embed/dense.ts reads them). */
export const ACTIVATION_CLASS: Record<DenseShape['activation'], string> = {
  tanh: 'torch.nn.modules.activation.Tanh',
  identity: 'torch.nn.modules.linear.Identity',
}

interface DenseViews {
  weight: Tensor
  bias: Tensor | null
}

/** One batch size's buffers: each module's output, its pre-activation's gradient and its input's gradient. */
interface DenseBuffers {
  out: Tensor[]
  dPre: Tensor[]
  dIn: Tensor[]
}

export class DenseHead {
  private grads: DenseViews[] | null = null
  /**
   * Per batch size (training passes, micro-batches, evaluation batches): made on a shape's first, eager pass and
   * kept, so that a CUDA graph captured later reads and writes the same memory.
   */
  private readonly buffers = new Map<number, DenseBuffers>()

  private constructor(
    readonly modules: readonly DenseShape[],
    private readonly params: DenseViews[],
    private readonly device: Device,
    private readonly precision: Precision,
  ) {}

  /** The head over `views` (the model's parameters by name), or null when the layout has no Dense module. */
  static of(modules: readonly DenseShape[], views: ReadonlyMap<string, Tensor>, device: Device, precision: Precision): DenseHead | null {
    return modules.length ? new DenseHead(modules, viewsOf(modules, views), device, precision) : null
  }

  /** Width of the last module's output: the sentence vectors'. */
  get outFeatures(): number {
    return this.modules[this.modules.length - 1].outFeatures
  }

  /** The gradients' views (the model's gradient buffer by name), once it exists. */
  bindGrads(views: ReadonlyMap<string, Tensor>): void {
    this.grads = viewsOf(this.modules, views)
  }

  private buffersFor(B: number): DenseBuffers {
    let b = this.buffers.get(B)
    if (!b) {
      const made: Tensor[] = []
      const make = (width: number) => {
        const t = Tensor.zeros([B, width], this.device)
        made.push(t)
        return t
      }
      try {
        b = {
          out: this.modules.map((m) => make(m.outFeatures)),
          dPre: this.modules.map((m) => make(m.outFeatures)),
          dIn: this.modules.map((m) => make(m.inFeatures)),
        }
      } catch (e) {
        for (const t of made) t.dispose()
        throw e
      }
      this.buffers.set(B, b)
    }
    return b
  }

  /** The last module's output for x [B, in] (a view kept until the next pass of B rows). */
  forward(x: Tensor): Tensor {
    const b = this.buffersFor(x.shape[0])
    this.modules.forEach((m, i) => {
      const p = this.params[i]
      ops.linearForward(b.out[i], i === 0 ? x : b.out[i - 1], p.weight, p.bias, this.precision)
      if (m.activation === 'tanh') ops.tanhForward(b.out[i], b.out[i])
    })
    return b.out[this.modules.length - 1]
  }

  /** The output forward() gave for B rows (a CUDA graph's replay runs the ops without calling it). */
  output(B: number): Tensor {
    return this.buffersFor(B).out[this.modules.length - 1]
  }

  /**
   * Back-propagates dL/dy [B, out] of the last forward() of x's rows: the parameter gradients accumulated, and
   * dL/dx returned (a view kept until the next backward of B rows).
   */
  backward(x: Tensor, dy: Tensor): Tensor {
    if (!this.grads) throw new Error('DenseHead.backward: no gradient buffer bound')
    const b = this.buffersFor(x.shape[0])
    let d = dy
    for (let i = this.modules.length - 1; i >= 0; i--) {
      const p = this.params[i],
        g = this.grads[i]
      if (this.modules[i].activation === 'tanh') {
        ops.tanhBackward(b.dPre[i], b.out[i], d)
        d = b.dPre[i]
      }
      ops.linearBackward(b.dIn[i], g.weight, g.bias, d, i === 0 ? x : b.out[i - 1], p.weight, false, this.precision)
      d = b.dIn[i]
    }
    return d
  }

  /**
   * Writes module i as sentence-transformers saves a Dense module: `dir`/config.json and model.safetensors
   * (linear.weight [out, in], linear.bias [out]).
   */
  async save(i: number, dir: string): Promise<void> {
    const m = this.modules[i],
      p = this.params[i]
    await mkdir(dir, { recursive: true })
    await writeSafetensors(join(dir, 'model.safetensors'), {
      'linear.weight': { shape: [m.outFeatures, m.inFeatures], data: p.weight.toFloat32Array() },
      ...(p.bias ? { 'linear.bias': { shape: [m.outFeatures], data: p.bias.toFloat32Array() } } : {}),
    })
    const config = {
      in_features: m.inFeatures,
      out_features: m.outFeatures,
      bias: m.bias,
      activation_function: ACTIVATION_CLASS[m.activation],
    }
    await writeFileAtomic(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n')
  }

  dispose(): void {
    for (const b of this.buffers.values()) for (const t of [...b.out, ...b.dPre, ...b.dIn]) t.dispose()
    this.buffers.clear()
  }
}

function viewsOf(modules: readonly DenseShape[], views: ReadonlyMap<string, Tensor>): DenseViews[] {
  return modules.map((m, i) => {
    const weight = views.get(denseWeightName(i))
    const bias = m.bias ? views.get(denseBiasName(i)) : null
    if (!weight || bias === undefined) throw new Error(`BertModel: the layout lacks Dense module ${i}'s parameters`)
    return { weight, bias }
  })
}
