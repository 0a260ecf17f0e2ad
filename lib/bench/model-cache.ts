// The benchmarks' models: BertModel.create draws every initial weight in JavaScript (about 6 s for bert-base),
// and one benchmark run creates the same model many times (bench step: one per device, batch size and
// precision; the GPU check calls it a dozen times, on a lent machine whose minutes are counted). The last
// initial weights are kept here, so the same config and seed are drawn once per process; the models are the
// ones create() makes, bit for bit.
import { BertModel, type ModelOptions } from '../model/bert.js'
import type { BertConfig } from '../model/config.js'

let last: { key: string; params: Float32Array } | null = null

/** BertModel.create(config, options) (drawn by createAsync's threads), or from the kept initial weights when the last call had the same config, head and seed. */
export async function benchModel(config: BertConfig, options: ModelOptions = {}): Promise<BertModel> {
  const key = JSON.stringify([config, options.mlp === true, options.seed ?? 0])
  if (last?.key === key) {
    const model = BertModel.create(config, options, { zeros: true })
    model.params.copyFrom(last.params)
    return model
  }
  const model = await BertModel.createAsync(config, options)
  last = { key, params: model.params.toFloat32Array() }
  return model
}
