// sentence-transformers' Dense module (sentence_transformers.models.Dense): after the pooling, y = f(W·x + b)
// with f = tanh or the identity, W [out_features, in_features]. Models such as LaBSE and the distiluse family
// end with one (distiluse-base-multilingual-cased: DistilBERT, mean pooling, Dense 768 -> 512 tanh); without it
// their vectors are not the model's. Its folder holds config.json ({in_features, out_features, bias,
// activation_function}) and model.safetensors ("linear.weight", "linear.bias"), or pytorch_model.bin before
// sentence-transformers 2.3.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import * as ops from '../ops.js'
import { readSafetensors } from '../safetensors.js'
import { readTorchTensors } from '../pytorch/torch-checkpoint.js'
import { Tensor, type Device } from '../tensor.js'
import type { Precision } from '../native.js'
import { readJsonFile } from '../util/json.js'
import { ACTIVATION_CLASS, type DenseShape } from '../model/dense-head.js'

export type DenseActivation = DenseShape['activation']

/** A Dense module as its config.json describes it. */
export interface DenseConfig {
  /** The module's folder (absolute). */
  dir: string
  inFeatures: number
  outFeatures: number
  bias: boolean
  activation: DenseActivation
}

// activation_function is the torch class's qualified name.
const ACTIVATIONS: Record<string, DenseActivation> = Object.fromEntries(
  Object.entries(ACTIVATION_CLASS).map(([activation, name]) => [name, activation as DenseActivation]),
)

/** Reads `dir/config.json` of a Dense module and checks that its weights are there in a form we read. */
export async function readDenseConfig(dir: string): Promise<DenseConfig> {
  const file = join(dir, 'config.json')
  const c = (await readJsonFile(file, { hint: "a sentence-transformers Dense module's folder" })) as Record<string, unknown>
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error(`${file}: expected a JSON object`)
  const size = (key: string): number => {
    const v = c[key]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > 1 << 20)
      throw new Error(`${file}: ${key} must be an integer in [1, 2^20], got ${JSON.stringify(v)}`)
    return v
  }
  const inFeatures = size('in_features'),
    outFeatures = size('out_features')
  const bias = c.bias ?? true
  if (typeof bias !== 'boolean') throw new Error(`${file}: bias must be true or false, got ${JSON.stringify(bias)}`)
  const name = c.activation_function ?? 'torch.nn.modules.activation.Tanh' // Dense's default
  const activation = typeof name === 'string' ? ACTIVATIONS[name] : undefined
  if (!activation)
    throw new Error(`${file}: activation_function ${JSON.stringify(name)} is not implemented (${Object.keys(ACTIVATIONS).join(' or ')})`)
  if (!existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'pytorch_model.bin')))
    throw new Error(`${dir}: model.safetensors (or pytorch_model.bin) is missing`)
  return { dir, inFeatures, outFeatures, bias, activation }
}

/** A Dense module's weights on a device. */
export class DenseLayer {
  private constructor(
    readonly config: DenseConfig,
    readonly weight: Tensor,
    readonly bias: Tensor | null,
  ) {}

  /**
   * Loads model.safetensors' linear.weight [out, in] and linear.bias [out] (F32, F16 or BF16); else pytorch_model.bin's
   * (what sentence-transformers before 2.3 saved).
   */
  static async load(config: DenseConfig, device: Device): Promise<DenseLayer> {
    const st = join(config.dir, 'model.safetensors')
    const file = existsSync(st) ? st : join(config.dir, 'pytorch_model.bin')
    const tensors = file === st ? await readSafetensors(file) : await readTorchTensors(file)
    const take = (name: string, shape: number[]) => {
      const t = tensors.get(name)
      if (!t) throw new Error(`${file}: no tensor ${name}`)
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
        throw new Error(`${file}: ${name} is [${t.shape.join(', ')}], config.json makes it [${shape.join(', ')}]`)
      if (!t.data.every(Number.isFinite)) throw new Error(`${file}: ${name} holds a value that is not finite`)
      return Tensor.from(t.data, shape, device)
    }
    const weight = take('linear.weight', [config.outFeatures, config.inFeatures])
    try {
      return new DenseLayer(config, weight, config.bias ? take('linear.bias', [config.outFeatures]) : null)
    } catch (e) {
      weight.dispose()
      throw e
    }
  }

  /** f(x·Wᵀ + b) for x [B, in] (a new tensor [B, out]); the product at `precision`, as the encoder's. */
  forward(x: Tensor, precision: Precision): Tensor {
    const out = Tensor.zeros([x.shape[0], this.config.outFeatures], x.device)
    try {
      ops.linearForward(out, x, this.weight, this.bias, precision)
      if (this.config.activation === 'tanh') ops.tanhForward(out, out)
      return out
    } catch (e) {
      out.dispose()
      throw e
    }
  }

  dispose(): void {
    this.weight.dispose()
    this.bias?.dispose()
  }
}

/** Checks that the modules chain: the first takes the encoder's `width`, each the one before's output. */
export function checkDenseChain(dense: readonly DenseConfig[], width: number, source: string): number {
  let w = width
  for (const d of dense) {
    if (d.inFeatures !== w)
      throw new Error(`${join(d.dir, 'config.json')}: in_features is ${d.inFeatures}, but ${source} gives it vectors of ${w}`)
    w = d.outFeatures
  }
  return w
}
