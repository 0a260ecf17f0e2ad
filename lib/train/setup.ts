// What a run trains: the device (lib/device.ts's policy), the tokenizer (the resumed checkpoint's
// copy, or given, the model's, or a WordPiece vocabulary built from the data) and the model
// (pretrained or freshly initialised, with the SimCSE MLP head and any dropout override).
import { join } from 'node:path'
import { resolveDevice, type DeviceRequest } from '../device.js'
import { BertModel } from '../model/bert.js'
import { namedConfig, positionOffset, readHfConfig, type BertConfig } from '../model/config.js'
import { encoderCudaBlocker } from '../model/cuda-support.js'
import { Tokenizer } from '../tokenizer.js'
import type { Device } from '../tensor.js'
import { effectivePrecision } from '../model/precision.js'
import type { SentenceFile } from '../data/sentences.js'
import type { ResolvedTrainOptions, TrainOptions } from './options.js'
import type { LoadedCheckpoint } from './checkpoint.js'
import { copyTokenizer, type TokenizerCopy } from './tokenizer-copy.js'
import { buildVocab, writeVocab } from './vocab.js'
import { readSentenceTransformersConfig, type SentenceTransformersConfig } from '../embed/sentence-transformers-config.js'
import { checkDenseChain, DenseLayer, readDenseConfig, type DenseConfig } from '../embed/dense.js'
import { denseBiasName, denseWeightName } from '../model/dense-head.js'
import { POOLING_LIST } from '../model/pooling.js'

/** Where --model's files are: the directory, or its Transformer module's folder (older sentence-transformers layout: 0_BERT/). */
async function modelFilesDir(dir: string): Promise<string> {
  return (await readSentenceTransformersConfig(dir)).transformerDir
}

/** The device to train on; 'auto' falls back to the CPU, saying why when a CUDA device goes unused. */
export function trainingDevice(request: DeviceRequest, say: (s: string) => void): Device {
  const choice = resolveDevice(request, { who: 'train', needs: { what: 'the encoder', cudaBlocker: () => encoderCudaBlocker(true) } })
  if (choice.cudaUnused && choice.note) say(choice.note)
  return choice.device
}

type VocabularySource = Pick<SentenceFile, 'count' | 'readLines'>
// Lines a vocabulary built from the data is counted over.
const VOCABULARY_SAMPLE = 200_000

/** The run's tokenizer and the copy of its files that every checkpoint keeps. */
export interface RunTokenizer {
  tokenizer: Tokenizer
  copy: TokenizerCopy
}

/**
 * A resumed run's tokenizer is the checkpoint's copy (a --tokenizer that differs from it is an error);
 * a new run's is --tokenizer, else the model's, else a WordPiece vocabulary built from the data.
 */
export async function loadTokenizer(
  o: ResolvedTrainOptions,
  /** The training data (each dataset's), whose lines a vocabulary is built from when there is no tokenizer. */
  file: VocabularySource | VocabularySource[],
  checkpoint: LoadedCheckpoint | null,
  say: (s: string) => void,
): Promise<RunTokenizer> {
  const kept = checkpoint?.tokenizer
  if (checkpoint && kept) {
    if (o.tokenizer) {
      const given = await copyTokenizer((await Tokenizer.load(o.tokenizer)).sourceFile, o.tokenizer)
      if (given.sha256 !== kept.sha256) {
        throw new Error(
          `--tokenizer ${o.tokenizer} is not the tokenizer the checkpointed run trained with (${kept.source}, ` +
            `copied into ${checkpoint.dir}): resume without --tokenizer`,
        )
      }
    }
    return { tokenizer: await Tokenizer.load(checkpoint.dir), copy: kept }
  }
  const given = o.tokenizer ?? (o.model && (await modelFilesDir(o.model)))
  if (checkpoint && !given) {
    throw new Error(
      `--resume: ${checkpoint.dir} holds no copy of the run's tokenizer (an older checkpoint): ` +
        `resume with --tokenizer and the run's vocab.txt or tokenizer.json`,
    )
  }
  if (given) {
    const tokenizer = await Tokenizer.load(given)
    return { tokenizer, copy: await copyTokenizer(tokenizer.sourceFile, given) }
  }
  // No tokenizer given for a model from scratch: a WordPiece vocabulary from (a sample of) the data: the first
  // lines of each file, an equal share of them (what a small dataset leaves over going to the others).
  const files = Array.isArray(file) ? file : [file]
  const sample: string[] = []
  let left = VOCABULARY_SAMPLE
  const bySize = files.map((_, i) => i).sort((a, b) => files[a].count - files[b].count)
  for (const [k, i] of bySize.entries()) {
    const take = Math.min(files[i].count, Math.floor(left / (files.length - k)))
    sample.push(...(await files[i].readLines(Array.from({ length: take }, (_, j) => j))))
    left -= take
  }
  const vocab = buildVocab(sample, o.vocabSize)
  const path = join(o.out, 'vocab.txt')
  await writeVocab(path, vocab)
  say(`built a ${vocab.length}-token WordPiece vocabulary from the training data (${path})`)
  return { tokenizer: await Tokenizer.load(path), copy: await copyTokenizer(path, `${path} (built from the data)`) }
}

/**
 * The options with `pooling` taken from a base model's sentence-transformers Pooling config when not given: a
 * sentence-transformers model fine-tuned keeps the pooling it was trained and is used with (all-MiniLM's and
 * all-mpnet's mean, bge's CLS); a plain Hugging Face model (no Pooling config) gets SimCSE's CLS. A pooling mode
 * not implemented here (max, last token, ...) is an Error asking for --pooling.
 */
export async function withBasePooling(options: TrainOptions): Promise<TrainOptions> {
  if (!options?.model || typeof options.model !== 'string' || options.pooling !== undefined) return options
  const st = await readSentenceTransformersConfig(options.model)
  if (st.unsupportedPooling)
    throw new Error(
      `${options.model}: its sentence-transformers pooling is ${st.unsupportedPooling} (${st.poolingFile}), which simcsepp does not train: pass --pooling ${POOLING_LIST}`,
    )
  return st.pooling ? { ...options, pooling: st.pooling } : options
}

/**
 * The model with its MLP head: from a pretrained directory or a named config; dropout overridden if asked.
 * `resuming`: every parameter will come from a checkpoint, so a created model's are not drawn.
 */
export async function createModel(
  o: ResolvedTrainOptions,
  tokenizer: Tokenizer,
  device: Device,
  resuming = false,
  say: (s: string) => void = () => {},
  /** The model directory's sentence-transformers settings, when the caller has read them already. */
  settings: SentenceTransformersConfig | null = null,
): Promise<BertModel> {
  let model: BertModel
  const precision = effectivePrecision(o.precision, device)
  if (o.model) {
    const st = settings ?? (await readSentenceTransformersConfig(o.model))
    // Dense modules after the pooling (LaBSE's, the distiluse family's) are part of the model's vectors: they are
    // trained with the encoder (instead of SimCSE's MLP head, which would sit where they do) and saved with it.
    const dense: DenseConfig[] = []
    for (const dir of st.denseDirs) dense.push(await readDenseConfig(dir))
    if (dense.length) checkDenseChain(dense, (await readHfConfig(st.transformerDir)).hiddenSize, 'the pooling')
    const { keepLayers } = o
    model = await BertModel.load(st.transformerDir, { device, mlp: dense.length === 0, seed: o.seed, precision, dense, keepLayers })
    try {
      await loadDenseWeights(model, dense)
    } catch (e) {
      model.dispose()
      throw e
    }
    if (keepLayers)
      say(
        `${o.model}: its layers ${keepLayers.join(', ')} kept (of ${(await readHfConfig(st.transformerDir)).numHiddenLayers}), as layers 0-${keepLayers.length - 1}`,
      )
    if (dense.length)
      say(
        `${o.model}: its ${dense.length} Dense module(s) after the pooling (to ${model.embeddingDim} dimensions) are trained with it and saved in the output`,
      )
  } else {
    const base = typeof o.config === 'object' ? o.config : namedConfig(o.config ?? 'mini', tokenizer.vocabSize)
    const options = { device, mlp: true, seed: o.seed, precision }
    model = resuming ? BertModel.create(base, options, { zeros: true }) : await BertModel.createAsync(base, options)
  }
  if (model.config.vocabSize < tokenizer.vocabSize) {
    model.dispose()
    throw new Error(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary only ${model.config.vocabSize}`)
  }
  if (o.dropout !== undefined) {
    Object.assign(model.config, { hiddenDropoutProb: o.dropout, attentionProbsDropoutProb: o.dropout })
    if (model.config.modern) model.config.modern.embeddingDropoutProb = o.dropout
  }
  return model
}

/** Tokens per sentence: the requested maxLen, at most what the model's position table holds. */
export function maxSequenceLength(c: BertConfig, maxLen: number): number {
  return Math.min(maxLen, c.maxPositionEmbeddings - positionOffset(c))
}

/** Copies each Dense module's weights from its folder into the model's parameters. */
async function loadDenseWeights(model: BertModel, dense: readonly DenseConfig[]): Promise<void> {
  for (const [i, d] of dense.entries()) {
    const layer = await DenseLayer.load(d, model.device)
    try {
      model.param(denseWeightName(i)).copyFrom(layer.weight)
      if (layer.bias) model.param(denseBiasName(i)).copyFrom(layer.bias)
    } finally {
      layer.dispose()
    }
  }
}
