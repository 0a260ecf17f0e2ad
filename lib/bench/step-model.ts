// The model `bench step` times: a named BERT size (tiny, mini, small, base) or the architecture in a model folder's
// config.json (BERT, RoBERTa, XLM-R, DistilBERT, MPNet, ModernBERT: the model a user trains), random-initialised
// either way. A step is timed, not trained, so the folder's weights are not read.
import { existsSync, statSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { namedConfig, positionOffset, readHfConfig, type BertConfig, type NamedConfig } from '../model/config.js'
import { checkModelFits } from '../model/size-check.js'

export const STEP_MODEL_NAMES: readonly NamedConfig[] = ['tiny', 'mini', 'small', 'base']

export interface StepModel {
  config: BertConfig
  /** The rows' and logs' name for it: the size, or the folder's name. */
  label: string
}

/** Whether `model` names a size or a folder with a config.json (what --model accepts). */
export function isStepModel(model: string): boolean {
  return STEP_MODEL_NAMES.includes(model as NamedConfig) || (isDirectory(model) && existsSync(join(model, 'config.json')))
}

/**
 * The configuration of `model` for sentences of seqLen tokens. A named size takes the synthetic tokenizer's
 * vocabulary (vocabSize) and positions for seqLen; a folder keeps its own vocabulary (the embedding table and AdamW
 * cost what they cost in training; the benchmark's sentences use its first ids) and must have positions for seqLen
 * tokens.
 */
export async function stepBenchModel(model: string, seqLen: number, vocabSize: number): Promise<StepModel> {
  if (STEP_MODEL_NAMES.includes(model as NamedConfig)) {
    const config = { ...namedConfig(model as NamedConfig, vocabSize), maxPositionEmbeddings: Math.max(512, seqLen) }
    return { config, label: model }
  }
  if (!isStepModel(model)) {
    throw new Error(`bench step: the model must be ${STEP_MODEL_NAMES.join(', ')} or a model folder with a config.json, got ${model}`)
  }
  const config = await readHfConfig(model)
  const positions = config.maxPositionEmbeddings - positionOffset(config)
  if (seqLen > positions)
    throw new RangeError(`bench step: ${seqLen} tokens a sentence, but the model in ${model} takes at most ${positions}`)
  if (config.vocabSize < 6) throw new RangeError(`bench step: the model in ${model} has ${config.vocabSize} tokens, fewer than 6`)
  checkModelFits(config, { mlp: true, training: true, source: join(model, 'config.json') })
  return { config, label: basename(resolve(model)) }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}
