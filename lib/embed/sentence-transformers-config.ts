// The settings a sentence-transformers model directory carries, read as SentenceTransformer(dir) reads
// them: modules.json (which modules, where), the Transformer module's sentence_bert_config.json
// (max_seq_length, do_lower_case), the Pooling module's config.json (the pooling mode), the Dense modules after
// it (dense.ts), whether a Normalize module ends the chain, and config_sentence_transformers.json's prompts (the
// prefixes of e5, bge, nomic-embed: encode(texts, { promptName: 'query' })). Every file is optional: a plain Hugging Face
// directory has none of them. A module we do not implement (LSTM, WeightedLayerPooling, Router, ...) is named in
// `unsupportedModules`, for the encoders to refuse rather than return vectors that are not the model's.
//
// Both layouts load: the current one (a `sentence_transformers.models.Transformer` module at path "",
// the model files at the top) and the older one (sentence-transformers < 1.0: a `models.BERT`,
// `models.RoBERTa`, ... module in its own folder, e.g. 0_BERT/ holding config.json, the weights, the
// tokenizer and sentence_bert_config.json). `transformerDir` says where the model files are.
import { existsSync, statSync } from 'node:fs'
import { isAbsolute, join, relative, resolve } from 'node:path'
import type { Pooling } from '../model/bert.js'
import { checkDenseChain, readDenseConfig, type DenseConfig } from './dense.js'
import { readJsonFile } from '../util/json.js'
import { isPooling } from '../model/pooling.js'
import { isSimilarityFn, SIMILARITY_FNS, type SimilarityFn } from './similarity-fn.js'

export interface SentenceTransformersConfig {
  /** From the Pooling module's config, when it names a mode we implement. */
  pooling?: Pooling
  /** true when modules.json lists a Normalize module. */
  normalize?: boolean
  /** The pooling config file that was read, if any. */
  poolingFile?: string
  /** A pooling mode the config asks for that we do not implement (max, weightedmean, lasttoken, ...). */
  unsupportedPooling?: string
  /** sentence_bert_config.json's max_seq_length: tokens per sentence, [CLS] and [SEP] included. */
  maxSeqLength?: number
  /** sentence_bert_config.json's do_lower_case: lowercase every sentence before tokenizing. */
  doLowerCase?: boolean
  /**
   * The directory that holds the transformer (config.json, weights, tokenizer): the Transformer module's
   * folder named by modules.json (0_BERT/ in the older layout), else `dir` itself. Absolute.
   */
  transformerDir: string
  /** The folders of the Dense modules after the pooling, in modules.json's order (absolute; none: []). */
  denseDirs: string[]
  /** modules.json entries of types not implemented here, or in an order not implemented ("type (path)"). */
  unsupportedModules: string[]
  /** modules.json, when the folder has one (absolute). */
  modulesFile?: string
  /** config_sentence_transformers.json's prompts: name -> the text prepended to each sentence ({} when none). */
  prompts: Record<string, string>
  /** config_sentence_transformers.json's default_prompt_name: the prompt encode() applies when given none. */
  defaultPromptName?: string
  /**
   * The Pooling config's include_prompt (default true). false: sentence-transformers leaves the prompt's tokens out
   * of the pooling, which is not implemented (encoding with a prompt is then an Error).
   */
  includePrompt: boolean
  /**
   * config_sentence_transformers.json's truncate_dim (sentence-transformers >= 3 saves it): the vectors' first
   * truncateDim values are the model's vectors (Matryoshka models).
   */
  truncateDim?: number
  /** config_sentence_transformers.json's similarity_fn_name: how the model's vectors are compared. */
  similarityFnName?: SimilarityFn
}

interface ModuleEntry {
  path?: unknown
  type?: unknown
}

const MODES: [key: string, name: string][] = [
  ['pooling_mode_cls_token', 'cls'],
  ['pooling_mode_mean_tokens', 'mean'],
  ['pooling_mode_max_tokens', 'max'],
  ['pooling_mode_mean_sqrt_len_tokens', 'mean_sqrt_len'],
  ['pooling_mode_weightedmean_tokens', 'weightedmean'],
  ['pooling_mode_lasttoken', 'lasttoken'],
]

// The Transformer module's class names: the current one and the architecture-specific classes that
// sentence-transformers < 1.0 saved (models.BERT, models.RoBERTa, ...; Transformer replaced them all).
const TRANSFORMER_TYPES = ['Transformer', 'BERT', 'RoBERTa', 'DistilBERT', 'ALBERT', 'CamemBERT', 'XLMRoBERTa', 'XLNet', 'T5']

/** The class name of a modules.json type ('sentence_transformers.models.BERT' -> 'BERT'). */
const className = (type: unknown) => (typeof type === 'string' ? type.slice(type.lastIndexOf('.') + 1) : '')

/** The place of a module class in the chain implemented (Transformer, Pooling, Dense..., Normalize), or -1. */
const chainStage = (type: string) => (TRANSFORMER_TYPES.includes(type) ? 0 : ['', 'Pooling', 'Dense', 'Normalize'].indexOf(type))

// sentence-transformers' Transformer.load tries these in order (the older names come from its
// architecture-specific module classes).
const TRANSFORMER_CONFIG_NAMES = [
  'sentence_bert_config.json',
  'sentence_roberta_config.json',
  'sentence_distilbert_config.json',
  'sentence_camembert_config.json',
  'sentence_albert_config.json',
  'sentence_xlm-roberta_config.json',
  'sentence_xlnet_config.json',
]

/** Reads the sentence-transformers settings of `dir` (none of the files needs to exist). */
export async function readSentenceTransformersConfig(dir: string): Promise<SentenceTransformersConfig> {
  const root = resolve(dir)
  const modulesFile = join(root, 'modules.json')
  const modules = await readJsonFile(modulesFile, { optional: true })
  const out: SentenceTransformersConfig = { transformerDir: root, denseDirs: [], unsupportedModules: [], prompts: {}, includePrompt: true }
  let poolingDir = '1_Pooling'
  if (modules !== undefined) {
    if (!Array.isArray(modules)) throw new Error(`${modulesFile}: expected a JSON array of modules`)
    out.modulesFile = modulesFile
    const entries = modules as ModuleEntry[]
    const modulePath = (names: string[]) => {
      const m = entries.find((e) => names.includes(className(e?.type)))
      if (!m) return undefined
      if (typeof m.path !== 'string') throw new Error(`${modulesFile}: module ${JSON.stringify(m.type)} has no "path"`)
      return m.path
    }
    poolingDir = modulePath(['Pooling']) ?? poolingDir
    const transformer = modulePath(TRANSFORMER_TYPES)
    if (transformer) out.transformerDir = moduleDir(root, transformer, modulesFile, 'the Transformer module')
    out.normalize = entries.some((m) => className(m?.type) === 'Normalize')
    let stage = -1
    for (const m of entries) {
      const type = className(m?.type),
        at = chainStage(type)
      if (at < 0 || at < stage || (at === stage && type !== 'Dense')) out.unsupportedModules.push(`${String(m?.type)} (${String(m?.path)})`)
      stage = Math.max(stage, at)
      if (type !== 'Dense') continue
      if (typeof m.path !== 'string') throw new Error(`${modulesFile}: module ${JSON.stringify(m.type)} has no "path"`)
      out.denseDirs.push(moduleDir(root, m.path, modulesFile, 'a Dense module'))
    }
  }
  Object.assign(out, await readTransformerConfig(out.transformerDir))
  Object.assign(out, await readPoolingConfig(join(root, poolingDir, 'config.json')))
  Object.assign(out, await readPrompts(join(root, 'config_sentence_transformers.json')))
  return out
}

/** config_sentence_transformers.json's prompts, default_prompt_name, truncate_dim and similarity_fn_name, checked (a missing file: none). */
async function readPrompts(file: string): Promise<Partial<SentenceTransformersConfig>> {
  const cfg = await readJsonFile(file, { optional: true })
  if (cfg === undefined) return {}
  const c = objectIn(file, cfg)
  const out: Partial<SentenceTransformersConfig> = {}
  if (c.prompts !== undefined && c.prompts !== null) {
    const prompts = objectIn(`${file}: prompts`, c.prompts)
    for (const [name, text] of Object.entries(prompts))
      if (typeof text !== 'string') throw new Error(`${file}: prompt ${JSON.stringify(name)} must be a string, got ${JSON.stringify(text)}`)
    out.prompts = { ...(prompts as Record<string, string>) }
  }
  const name = c.default_prompt_name
  if (name !== undefined && name !== null) {
    if (typeof name !== 'string' || !Object.hasOwn(out.prompts ?? {}, name))
      throw new Error(
        `${file}: default_prompt_name ${JSON.stringify(name)} is not one of its prompts (${Object.keys(out.prompts ?? {}).join(', ') || 'none'})`,
      )
    out.defaultPromptName = name
  }
  if (c.similarity_fn_name !== undefined && c.similarity_fn_name !== null) {
    if (!isSimilarityFn(c.similarity_fn_name))
      throw new Error(
        `${file}: similarity_fn_name must be ${SIMILARITY_FNS.join(', ')} or null, got ${JSON.stringify(c.similarity_fn_name)}`,
      )
    out.similarityFnName = c.similarity_fn_name
  }
  const truncate = c.truncate_dim
  if (truncate !== undefined && truncate !== null) {
    if (typeof truncate !== 'number' || !Number.isSafeInteger(truncate) || truncate < 1)
      throw new Error(`${file}: truncate_dim must be a positive integer or null, got ${JSON.stringify(truncate)}`)
    out.truncateDim = truncate
  }
  return out
}

/**
 * The Dense modules an encoder of `st`'s folder applies after its pooling (of vectors `width` wide), their configs
 * read and checked to chain. Modules outside the chain implemented are an Error naming them: their vectors
 * would not be the model's.
 */
export async function denseModules(st: SentenceTransformersConfig, width: number): Promise<DenseConfig[]> {
  if (st.unsupportedModules.length) {
    throw new Error(
      `${st.modulesFile} lists ${st.unsupportedModules.join(', ')}: not implemented (a Transformer, a Pooling, Dense modules and a Normalize, in this order, are)`,
    )
  }
  const dense: DenseConfig[] = []
  for (const dir of st.denseDirs) dense.push(await readDenseConfig(dir))
  checkDenseChain(dense, width, 'the pooling')
  return dense
}

/** A module's folder inside the model directory; one that is missing or outside it is an error naming modules.json. */
function moduleDir(root: string, path: string, modulesFile: string, what: string): string {
  const dir = resolve(root, path)
  const rel = relative(root, dir)
  if (rel.startsWith('..') || isAbsolute(rel)) throw new Error(`${modulesFile}: module path ${JSON.stringify(path)} leaves ${root}`)
  let isDir = false
  try {
    isDir = statSync(dir).isDirectory()
  } catch {
    // reported below
  }
  if (!isDir) throw new Error(`${modulesFile}: ${what}'s folder ${JSON.stringify(path)} is not in ${root}`)
  return dir
}

async function readTransformerConfig(moduleDir: string): Promise<Partial<SentenceTransformersConfig>> {
  const name = TRANSFORMER_CONFIG_NAMES.find((n) => existsSync(join(moduleDir, n)))
  if (!name) return {}
  const file = join(moduleDir, name)
  const c = objectIn(file, await readJsonFile(file))
  const out: Partial<SentenceTransformersConfig> = {}
  // null is what sentence-transformers saves when it inferred the length from the model: same as absent.
  const max = c.max_seq_length
  if (max !== undefined && max !== null) {
    if (typeof max !== 'number' || !Number.isSafeInteger(max) || max < 3)
      throw new Error(`${file}: max_seq_length must be an integer >= 3, got ${JSON.stringify(max)}`)
    out.maxSeqLength = max
  } else {
    // sentence-transformers >= 5 keeps the length in the tokenizer (tokenizer_config.json's model_max_length), which
    // its Transformer then truncates at; transformers writes 1e30 there for "no limit".
    const tokenizerFile = join(moduleDir, 'tokenizer_config.json')
    const tc = await readJsonFile(tokenizerFile, { optional: true })
    const limit = tc !== undefined ? objectIn(tokenizerFile, tc).model_max_length : undefined
    if (typeof limit === 'number' && Number.isSafeInteger(limit) && limit >= 3 && limit <= 1 << 20) out.maxSeqLength = limit
  }
  const lower = c.do_lower_case
  if (lower !== undefined && lower !== null) {
    if (typeof lower !== 'boolean') throw new Error(`${file}: do_lower_case must be true or false, got ${JSON.stringify(lower)}`)
    out.doLowerCase = lower
  }
  return out
}

async function readPoolingConfig(file: string): Promise<Partial<SentenceTransformersConfig>> {
  const cfg = await readJsonFile(file, { optional: true })
  if (cfg === undefined) return {}
  const c = objectIn(file, cfg)
  const out: Partial<SentenceTransformersConfig> = { poolingFile: file }
  const on = MODES.filter(([key]) => c[key] === true).map(([, name]) => name)
  // The constructor's pooling_mode string, which some configs carry instead (its name for sqrt: mean_sqrt_len_tokens).
  if (typeof c.pooling_mode === 'string' && !on.length)
    on.push(c.pooling_mode === 'mean_sqrt_len_tokens' ? 'mean_sqrt_len' : c.pooling_mode)
  if (on.length === 1 && isPooling(on[0])) out.pooling = on[0]
  else if (on.length) out.unsupportedPooling = on.join('+')
  if (c.include_prompt !== undefined) {
    if (typeof c.include_prompt !== 'boolean')
      throw new Error(`${file}: include_prompt must be true or false, got ${JSON.stringify(c.include_prompt)}`)
    out.includePrompt = c.include_prompt
  }
  return out
}

function objectIn(file: string, v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${file}: expected a JSON object`)
  return v as Record<string, unknown>
}
