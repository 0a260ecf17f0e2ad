// `exportOnnx(model, out)`: a model directory -> a folder that transformers.js loads as a local model
// and onnxruntime runs directly:
//   out/config.json              the Hugging Face config (model_type selects BertModel / RobertaModel / XLMRobertaModel /
//                                DistilBertModel / MPNetModel / ModernBertModel)
//   out/tokenizer.json           the model's tokenizer (lowercasing added when sentence_bert_config asks)
//   out/tokenizer_config.json    tokenizer_class, model_max_length (the encoder's maxLength), special tokens
//   out/special_tokens_map.json
//   out/onnx/model.onnx          the encoder (bert-graph.ts; ModernBERT's modernbert-graph.ts); model_fp16.onnx with fp16 weights,
//                                model_quantized.onnx with int8 ones (the names transformers.js's dtype picks)
// Pooling, Dense modules, normalisation and max length default as in SentenceEncoder.load, from the directory's
// sentence-transformers settings, so the ONNX sentence_embedding equals SentenceEncoder's vectors.
import { existsSync, promises as fsp, readdirSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BertModel, type Pooling } from '../model/bert.js'
import { hfConfigJson, hfTokenizerClass, positionOffset, type BertConfig } from '../model/config.js'
import { denseModules, readSentenceTransformersConfig } from '../embed/sentence-transformers-config.js'
import { DenseLayer } from '../embed/dense.js'
import type { Tensor } from '../tensor.js'
import { missingModelFiles } from '../model/model-files.js'
import { Tokenizer } from '../tokenizer.js'
import { writeFileAtomic } from '../util/atomic-write.js'
import { readJsonFile } from '../util/json.js'
import { ensureWritableDirectory } from '../train/out-dir.js'
import { bertGraph, graphInputNames } from './bert-graph.js'
import { modernBertGraph } from './modernbert-graph.js'
import { modelWriter } from './onnx-model.js'
import { writeProtoFile } from './write-proto-file.js'
import type { WeightStorage } from './graph-builder.js'
import { resolveModel } from '../hub/hub-model.js'
import { isPooling, POOLING_LIST } from '../model/pooling.js'

export interface ExportOnnxOptions {
  /** Sentence vector of the sentence_embedding output. Default: the directory's pooling, else 'cls'. */
  pooling?: Pooling
  /** Unit-length sentence_embedding. Default: whether modules.json lists Normalize. */
  normalize?: boolean
  /** Tokens per sentence (tokenizer_config's model_max_length). Default: max_seq_length, else 128. */
  maxLength?: number
  /**
   * 'fp32' (default): onnx/model.onnx; 'fp16': onnx/model_fp16.onnx, weights stored in fp16, math in fp32;
   * 'q8': onnx/model_quantized.onnx, linear layers and word embeddings in int8, their products in integers.
   * A list writes each of them (one load of the model).
   */
  weights?: WeightStorage | readonly WeightStorage[]
  /** Write into an `out` that already holds files (ours are replaced, others left). Default false. */
  overwrite?: boolean
}

export interface ExportOnnxResult {
  out: string
  /** The .onnx file written (the first, when several were). */
  onnxFile: string
  bytes: number
  /** Every .onnx file written, in the order of `weights`. */
  files: { weights: WeightStorage; file: string; bytes: number }[]
  pooling: Pooling
  normalize: boolean
  maxLength: number
  inputs: string[]
}

/** protobuf messages are limited to 2 GiB; larger models would need ONNX external data. */
const PROTOBUF_LIMIT = 2 ** 31 - 1
/** The file each weight storage goes to: the names transformers.js loads for dtype fp32, fp16 and q8. */
const ONNX_FILE: Record<WeightStorage, string> = { fp32: 'model.onnx', fp16: 'model_fp16.onnx', q8: 'model_quantized.onnx' }
const OPSET = 17
const IR_VERSION = 8 // the IR of opset 17 (ONNX 1.12)

function fail(message: string): never {
  throw new Error(`exportOnnx: ${message}`)
}

export async function exportOnnx(model: string, out: string, options: ExportOnnxOptions = {}): Promise<ExportOnnxResult> {
  if (typeof model !== 'string' || !model) fail(`expected a model directory path, got ${JSON.stringify(model)}`)
  if (typeof out !== 'string' || !out) fail(`expected an output folder path, got ${JSON.stringify(out)}`)
  checkOptions(options)
  model = await resolveModel(model) // a Hugging Face Hub id: its cached snapshot (lib/hub/hub-model.ts)
  const overwrite = options.overwrite ?? false
  refuseFullOutDir(out, overwrite) // before the minutes a large model takes, not after
  const dir = resolve(model)
  if (!existsSync(dir) || !statSync(dir).isDirectory()) fail(`${model}: no such model directory`)
  const st = await readSentenceTransformersConfig(dir)
  const missing = missingModelFiles(st.transformerDir)
  if (missing.length) fail(`${st.transformerDir} is not a model directory: missing ${missing.join(', ')}`)
  const pooling =
    options.pooling ??
    st.pooling ??
    (st.unsupportedPooling
      ? fail(`${st.poolingFile} asks for ${st.unsupportedPooling} pooling, which is not implemented (pass pooling ${POOLING_LIST})`)
      : 'cls')
  const normalize = options.normalize ?? st.normalize ?? false
  const weights: readonly WeightStorage[] = typeof options.weights === 'string' ? [options.weights] : (options.weights ?? ['fp32'])

  // Load first: a directory that is not a model fails before anything is written.
  const tokenizer = await Tokenizer.load(st.transformerDir)
  const encoder = await BertModel.load(st.transformerDir)
  const config = encoder.config
  const denseLayers: DenseLayer[] = []
  try {
    for (const d of await denseModules(st, config.hiddenSize)) denseLayers.push(await DenseLayer.load(d, 'cpu'))
  } catch (e) {
    for (const l of denseLayers) l.dispose()
    encoder.dispose()
    fail((e as Error).message)
  }
  const maxLength = Math.min(options.maxLength ?? st.maxSeqLength ?? 128, config.maxPositionEmbeddings - positionOffset(config))
  const files: ExportOnnxResult['files'] = []
  let abs = ''
  try {
    // The weights are read from the model's tensors while each file is written, one at a time.
    const source = (p: Tensor) => ({ shape: p.shape, values: (into: Float32Array) => void p.toFloat32Array(into) })
    const param = (name: string) => source(encoder.param(name))
    const dense = denseLayers.map((l) => ({
      weight: source(l.weight),
      bias: l.bias ? source(l.bias) : null,
      activation: l.config.activation,
    }))
    const version = await packageVersion()
    for (const storage of weights) {
      const onnx = modelWriter({
        graph: (config.modelType === 'modernbert' ? modernBertGraph : bertGraph)(config, param, {
          pooling,
          normalize,
          weights: storage,
          dense,
        }),
        irVersion: IR_VERSION,
        opsetVersion: OPSET,
        producerName: 'simcsepp',
        producerVersion: version,
        docString: `${config.modelType} sentence encoder (${pooling} pooling${dense.length ? `, ${dense.length} Dense` : ''}${normalize ? ', normalised' : ''})`,
        metadata: { pooling, normalize: String(normalize), weights: storage },
      })
      if (onnx.byteLength > PROTOBUF_LIMIT)
        fail(`the model is ${onnx.byteLength} bytes, more than the 2 GiB an ONNX file can hold without external data`)
      if (!abs) {
        abs = ensureWritableDirectory(out)
        refuseFullOutDir(out, overwrite) // again: something may have been written there meanwhile
        await fsp.mkdir(join(abs, 'onnx'), { recursive: true })
      }
      const file = join(abs, 'onnx', ONNX_FILE[storage])
      files.push({ weights: storage, file, bytes: await writeProtoFile(file, onnx.parts()) })
    }
  } finally {
    for (const l of denseLayers) l.dispose()
    encoder.dispose()
  }
  await writeFileAtomic(join(abs, 'config.json'), hfConfigJson(config))
  await writeTokenizerFiles(tokenizer, abs, { config, maxLength, lowercase: st.doLowerCase ?? false, sourceDir: st.transformerDir })
  return { out: abs, onnxFile: files[0].file, bytes: files[0].bytes, files, pooling, normalize, maxLength, inputs: graphInputNames(config) }
}

function checkOptions(o: ExportOnnxOptions): void {
  if (o === null || typeof o !== 'object') fail('options must be an object')
  const known = ['pooling', 'normalize', 'maxLength', 'weights', 'overwrite']
  for (const k of Object.keys(o)) if (!known.includes(k)) fail(`unknown option '${k}' (known options: ${known.join(', ')})`)
  if (o.pooling !== undefined && !isPooling(o.pooling)) fail(`pooling must be ${POOLING_LIST}, got ${JSON.stringify(o.pooling)}`)
  if (o.normalize !== undefined && typeof o.normalize !== 'boolean') fail(`normalize must be a boolean, got ${JSON.stringify(o.normalize)}`)
  if (o.overwrite !== undefined && typeof o.overwrite !== 'boolean') fail(`overwrite must be a boolean, got ${JSON.stringify(o.overwrite)}`)
  if (o.weights !== undefined) {
    const list: unknown[] = Array.isArray(o.weights) ? o.weights : [o.weights]
    for (const w of list)
      if (typeof w !== 'string' || !Object.hasOwn(ONNX_FILE, w))
        fail(`weights must be 'fp32', 'fp16' or 'q8' (or a list of them), got ${JSON.stringify(o.weights)}`)
    if (!list.length || new Set(list).size !== list.length)
      fail(`weights must list each storage at most once and at least one, got ${JSON.stringify(o.weights)}`)
  }
  if (o.maxLength !== undefined && (!Number.isSafeInteger(o.maxLength) || o.maxLength < 3))
    fail(`maxLength must be an integer >= 3, got ${JSON.stringify(o.maxLength)}`)
}

/** An existing `out` that holds anything is refused unless `overwrite`; a file in its place too. */
function refuseFullOutDir(out: string, overwrite: boolean): void {
  if (!existsSync(out)) return
  if (!statSync(out).isDirectory()) fail(`--out ${out} is a file, not a directory`)
  const present = readdirSync(out)
  if (present.length && !overwrite)
    fail(
      `--out ${out} already holds files (${present.slice(0, 5).join(', ')}${present.length > 5 ? ', ...' : ''}): ` +
        'choose another folder or pass --overwrite',
    )
}

interface TokenizerFileOptions {
  config: BertConfig
  maxLength: number
  lowercase: boolean
  sourceDir: string
}

const SPECIAL_ROLES = ['cls_token', 'sep_token', 'pad_token', 'unk_token', 'mask_token', 'bos_token', 'eos_token'] as const

/** The tokenizer as transformers.js reads it: tokenizer.json plus tokenizer_config.json and special_tokens_map.json. */
async function writeTokenizerFiles(tokenizer: Tokenizer, out: string, o: TokenizerFileOptions): Promise<void> {
  await tokenizer.save(out) // tokenizer.json (+ vocab.txt and tokenizer_config.json for WordPiece)
  const jsonFile = join(out, 'tokenizer.json')
  const json = (await readJsonFile(jsonFile)) as Record<string, unknown>
  // What the tokenizer itself does: transformers' BertTokenizerFast rebuilds the normalizer from
  // do_lower_case when the two disagree, so the config must say what tokenizer.json does.
  const normalizer = json.normalizer as { type?: unknown; lowercase?: unknown } | null
  const tokenizerLowercases = normalizer?.type === 'BertNormalizer' && normalizer.lowercase !== false
  if (o.lowercase) {
    // sentence-transformers lowercases the text before the tokenizer (do_lower_case); transformers.js
    // only runs the tokenizer, so the lowercasing goes in front of its normalizer.
    json.normalizer = { type: 'Sequence', normalizers: [{ type: 'Lowercase' }, ...(json.normalizer ? [json.normalizer] : [])] }
    await writeFileAtomic(jsonFile, JSON.stringify(json, null, 2) + '\n')
  }
  const source = (await readJsonFile(join(o.sourceDir, 'tokenizer_config.json'), { optional: true })) as Record<string, unknown> | undefined
  const roberta = o.config.modelType === 'roberta'
  // RoBERTa's specials, and MPNet's (RoBERTa's around BERT's WordPiece vocabulary, whose [UNK] it keeps).
  const sentencePieceLike = {
    cls_token: '<s>',
    sep_token: '</s>',
    pad_token: '<pad>',
    mask_token: '<mask>',
    bos_token: '<s>',
    eos_token: '</s>',
  }
  const defaults: Record<string, string> = roberta
    ? { ...sentencePieceLike, unk_token: '<unk>' }
    : o.config.modelType === 'mpnet'
      ? { ...sentencePieceLike, unk_token: '[UNK]' }
      : { cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', unk_token: '[UNK]', mask_token: '[MASK]' }
  const specials: Record<string, string> = {}
  for (const role of SPECIAL_ROLES) {
    const given = source?.[role]
    const name = typeof given === 'string' ? given : (given as { content?: unknown } | undefined)?.content
    const token = typeof name === 'string' ? name : defaults[role]
    if (token !== undefined && tokenizer.tokenToId(token) !== null) specials[role] = token
  }
  const config = {
    ...(source ?? {}),
    tokenizer_class: source?.tokenizer_class ?? hfTokenizerClass(o.config),
    ...specials,
    model_max_length: o.maxLength,
    ...(roberta ? {} : { do_lower_case: tokenizerLowercases }),
    clean_up_tokenization_spaces: source?.clean_up_tokenization_spaces ?? true,
  }
  await writeFileAtomic(join(out, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n')
  await writeFileAtomic(join(out, 'special_tokens_map.json'), JSON.stringify(specials, null, 2) + '\n')
}

async function packageVersion(): Promise<string> {
  const pkg = (await readJsonFile(fileURLToPath(new URL('../../package.json', import.meta.url)), { optional: true })) as
    { version?: string } | undefined
  return pkg?.version ?? 'unknown'
}
