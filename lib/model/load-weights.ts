// Fills a model's parameter tensor from its weight files without a model-sized JavaScript buffer: each
// tensor the checkpoint holds is read in 4 MB chunks (SafetensorsReader), checked to be finite and copied
// into its place in native memory (on the CPU or a CUDA device); whatever the checkpoint lacks gets the
// values a full initialisation with the same seed would give it (init.ts), computed for that tensor alone.
import { addon } from '../native.js'
import type { Tensor } from '../tensor.js'
import type { BertConfig } from './config.js'
import { initialEntryValues } from './init.js'
import { MLP_BIAS, MLP_WEIGHT, type ParamLayout } from './layout.js'
import type { WeightReader } from './model-files.js'

/**
 * Writes every parameter of `layout` into `params` (zero-filled, layout.total elements). `mapping`: our name ->
 * the checkpoint's (matchCheckpoint); a training head stored under our names is read too when its size fits.
 */
export async function loadParameters(
  params: Tensor,
  layout: ParamLayout,
  config: BertConfig,
  seed: number,
  weights: WeightReader,
  mapping: ReadonlyMap<string, string>,
): Promise<void> {
  for (const e of layout.entries) {
    let theirs = mapping.get(e.name)
    // A resumed training checkpoint may carry the head under our names.
    if (theirs === undefined && (e.name === MLP_WEIGHT || e.name === MLP_BIAS)) {
      const stored = weights.entries.get(e.name)
      if (stored && stored.shape.reduce((a, b) => a * b, 1) === e.size) theirs = e.name
    }
    if (theirs === undefined) {
      params.view(e.offset, [e.size]).copyFrom(initialEntryValues(layout, config, seed, e.name))
      continue
    }
    const name = theirs
    await weights.read(name, (values, at) => {
      const i = addon.firstNonFinite(values)
      if (i >= 0) {
        throw new Error(
          `${weights.fileOf(name)}: tensor '${name}' holds ${values[i]} at element ${at + i}; the model is corrupt (retrain or re-download it)`,
        )
      }
      params.view(e.offset + at, [values.length]).copyFrom(values)
    })
  }
}
