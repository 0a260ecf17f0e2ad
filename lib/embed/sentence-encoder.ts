// SentenceEncoder: sentences -> vectors with a trained (or any BERT/RoBERTa/DistilBERT) model directory.
//
// The model lives in a worker thread that the encoder owns, so encode() never blocks the caller's
// event loop: sentences go to the worker in chunks, vectors come back batch by batch as transferred
// buffers. Sentences are tokenized, ordered by length (longest first) and batched so that little
// padding is computed, and the results are put back in input order.
import { existsSync, promises as fsp } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { positionOffset, readHfConfig } from '../model/config.js'
import { checkModelFits } from '../model/size-check.js'
import { missingModelFiles } from '../model/model-files.js'
import type { Pooling } from '../model/bert.js'
import { denseModules, readSentenceTransformersConfig } from './sentence-transformers-config.js'
import type { FromWorker, InitData, RunOptions, ToWorker } from './protocol.js'
import { DEVICE_REQUESTS, type DeviceRequest } from '../device.js'
import { ENCODER_PRECISION_REQUESTS, type EncoderPrecision, type EncoderPrecisionRequest } from '../model/precision.js'
import { LangChainEmbeddings } from './langchain.js'
import { VectorIndex, type SearchResult, type VectorsInput } from './search.js'
import { BinaryIndex, type BinarySearchOptions } from './binary-index.js'
import { ROLE_PROMPTS } from './role-prompts.js'
import { resolveModel } from '../hub/hub-model.js'
import { isPooling, POOLING_LIST } from '../model/pooling.js'
import { isSimilarityFn, pairSimilarity, searchSimilarity, SIMILARITY_FNS, similarityMatrix, type SimilarityFn } from './similarity-fn.js'

export type { Pooling } from '../model/bert.js'
export type EncoderDevice = DeviceRequest

export interface SentenceEncoderOptions {
  /**
   * 'auto' (default): CUDA when a device is available and can run the encoder, else the CPU.
   * 'cuda' throws when it cannot be used.
   */
  device?: EncoderDevice
  /**
   * Sentence vector: the [CLS] state, the mean over real tokens, each dimension's largest value over them ('max') or
   * their sum over √count ('mean_sqrt_len'). Default: 1_Pooling/config.json's mode, else 'cls'.
   */
  pooling?: Pooling
  /**
   * How similarity() and search() compare vectors: 'cosine', 'dot' (the dot product of the vectors as they are: a
   * model trained with dot-product scores), 'euclidean' or 'manhattan' (the negative distance; search() ranks those
   * by cosine). Default: config_sentence_transformers.json's similarity_fn_name, else 'cosine'.
   */
  similarityFn?: SimilarityFn
  /** Scale every vector to unit length. Default: whether modules.json lists a Normalize module (true then), else false. */
  normalize?: boolean
  /**
   * Tokens per sentence, [CLS] and [SEP] included; longer ones are truncated. Default: the max_seq_length
   * of sentence_bert_config.json, else 128. Either is clamped to the model's positions.
   */
  maxLength?: number
  /** Default batch size of encode(). Default 32. */
  batchSize?: number
  /**
   * Precision of the linear layers' products: 'auto' (default: bf16 on CUDA, fp32 on the CPU), 'fp32'
   * (vectors as the CPU computes them, within 1e-4), 'bf16' (operands rounded to bfloat16), or 'int8' (CPU only:
   * the encoder layers' products in int8, each weight quantized per output channel and each input row at every
   * product, summed exactly; 1.9-3x fp32's sentences/s with AVX-512 VNNI, mini to base, the vectors within about
   * 1e-3 of fp32's in 1 - cos: check it on your own evaluation).
   */
  precision?: EncoderPrecisionRequest
  /**
   * Keep the first truncateDim values of every vector (a Matryoshka model's smaller vectors), then normalise them
   * when `normalize` is on. Default: config_sentence_transformers.json's truncate_dim, else none; null: none.
   * sentence-transformers cuts after its Normalize module without normalising again: its cosine similarities are
   * ours, its vectors ours times their norm.
   */
  truncateDim?: number | null
}

/** Options of one encode() call. */
export interface EmbedOptions {
  /** Sentences per forward pass. Default: the encoder's batchSize (32). */
  batchSize?: number
  /**
   * Batch sentences of similar length together (default true). false batches them in input order,
   * padding each batch to its longest sentence (for comparisons; results are the same up to float rounding).
   */
  sortByLength?: boolean
  /**
   * Called on the caller's thread each time the worker finishes a batch: `done` of `total` sentences
   * encoded so far (batches finish longest first, so early ones take longer). If it throws, encode()
   * rejects with that error.
   */
  onProgress?: (progress: EncodeProgress) => void
  /**
   * A text prepended to every sentence (sentence-transformers' prompt: e5's 'query: ', ...). '' means none, and
   * keeps the model's default prompt away.
   */
  prompt?: string
  /**
   * The name of one of the model's prompts (config_sentence_transformers.json: `encoder.prompts`), e.g. 'query'
   * or 'document'. Default: its default_prompt_name, if any. Not with `prompt`.
   */
  promptName?: string
}

/** Sentences encoded so far by one encode() call. */
export interface EncodeProgress {
  done: number
  total: number
}

/** Sentences posted to the worker per message; the main thread yields between messages. */
const POST_CHUNK = 2048

interface Request {
  id: number
  results: Float32Array[]
  done: number
  onProgress: ((progress: EncodeProgress) => void) | undefined
  resolve: (v: Float32Array[]) => void
  reject: (e: Error) => void
}

/** A misspelled option (`poolng`) is an error, as everywhere else in the API, not silently ignored. */
function rejectUnknown(where: string, options: object, known: readonly string[]): void {
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) fail(`${where}: unknown option '${k}' (known options: ${known.join(', ')})`)
  }
}

function fail(message: string): never {
  throw new Error(`SentenceEncoder: ${message}`)
}

async function checkDirectory(dir: string): Promise<void> {
  let st
  try {
    st = await fsp.stat(dir)
  } catch {
    fail(`${dir}: no such directory`)
  }
  if (!st.isDirectory()) fail(`${dir}: not a directory (expected a model directory)`)
}

/** The transformer's files in `dir` (the model directory, or its Transformer module's folder: `module`). */
function checkModelFiles(dir: string, module?: string): void {
  const missing = missingModelFiles(dir) // weights: model.safetensors, or model.safetensors.index.json and its shards
  if (missing.length) fail(`${dir} is not a model directory${module ? ` (${module})` : ''}: missing ${missing.join(', ')}`)
}

function workerEntry(): { file: URL; execArgv?: string[] } {
  const js = new URL('./worker.js', import.meta.url)
  if (existsSync(fileURLToPath(js))) return { file: js }
  // Running from the TypeScript sources (tests): load worker.ts through the parent's loaders
  // (tap and tsx register them with --import, which the worker must repeat).
  const ts = new URL('./worker.ts', import.meta.url)
  if (existsSync(fileURLToPath(ts))) return { file: ts, execArgv: process.execArgv }
  fail(`cannot find its worker script next to ${fileURLToPath(import.meta.url)} (worker.js or worker.ts)`)
}

export class SentenceEncoder {
  private nextId = 1
  private readonly requests = new Map<number, Request>()
  private closed = false
  private closing: Promise<void> | null = null
  private dead: Error | null = null

  private constructor(
    private readonly worker: Worker,
    /** The model directory (absolute). */
    readonly dir: string,
    /** Length of every vector (the model's hidden size). */
    readonly dimension: number,
    /** Where the model runs. */
    readonly device: 'cpu' | 'cuda',
    /** Precision of the linear layers' products ('auto' resolved). */
    readonly precision: EncoderPrecision,
    readonly pooling: Pooling,
    readonly normalize: boolean,
    /** Tokens per sentence: the maxLength option, else the directory's max_seq_length, else 128; at most the model's positions. */
    readonly maxLength: number,
    /** Whether sentences are lowercased before tokenizing (sentence_bert_config.json's do_lower_case). */
    readonly lowercase: boolean,
    readonly batchSize: number,
    /** Why the device differs from the request ('auto' without a usable CUDA device), if it does. */
    readonly deviceNote: string | undefined,
    /** What the precision costs on this machine that one may not expect ('int8' on a CPU without VNNI), if anything. */
    readonly precisionNote: string | undefined,
    /** The model's named prompts (config_sentence_transformers.json; {} when none): name -> the prefix. */
    readonly prompts: Readonly<Record<string, string>>,
    /** The prompt encode() applies when given none (config_sentence_transformers.json's default_prompt_name). */
    readonly defaultPromptName: string | undefined,
    /** The Pooling config's include_prompt (false: mean pooling leaves the prompt's tokens out, as sentence-transformers). */
    private readonly includePrompt: boolean,
    /** Values kept of each vector (truncateDim; `dimension` then), or null for all. */
    private readonly truncateDim: number | null,
    /** How similarity() compares vectors (the similarityFn option, else the model's similarity_fn_name, else 'cosine'). */
    readonly similarityFn: SimilarityFn,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m))
    worker.on('error', (e) => this.die(e instanceof Error ? e : new Error(String(e))))
    worker.on('exit', (code) => this.die(new Error(`SentenceEncoder: the worker thread exited (code ${code})`)))
    worker.unref()
  }

  /**
   * Loads a model directory (config.json, model.safetensors, tokenizer.json or vocab.txt) into a worker
   * thread; or a Hugging Face Hub id ('org/name', 'org/name@revision') where no such folder exists, from
   * huggingface_hub's cache, downloading the model into it when missing (lib/hub/hub-model.ts). A
   * sentence-transformers folder of either layout loads: the model files at the top, or in the Transformer
   * module's folder that modules.json names (0_BERT/ and the like, sentence-transformers < 1.0).
   */
  static async load(dir: string, options: SentenceEncoderOptions = {}): Promise<SentenceEncoder> {
    if (typeof dir !== 'string' || !dir)
      fail(`load: expected a model directory path, got ${typeof dir === 'string' ? 'an empty string' : typeof dir}`)
    if (options === null || typeof options !== 'object') fail('load: options must be an object')
    rejectUnknown('load', options, ['device', 'pooling', 'normalize', 'maxLength', 'batchSize', 'precision', 'truncateDim', 'similarityFn'])
    if (options.similarityFn !== undefined && !isSimilarityFn(options.similarityFn))
      fail(`load: similarityFn must be ${SIMILARITY_FNS.join(', ')}, got ${JSON.stringify(options.similarityFn)}`)
    const device = options.device ?? 'auto'
    if (!DEVICE_REQUESTS.includes(device)) fail(`load: device must be 'auto', 'cpu' or 'cuda', got ${JSON.stringify(device)}`)
    const precision = options.precision ?? 'auto'
    if (!ENCODER_PRECISION_REQUESTS.includes(precision))
      fail(`load: precision must be 'auto', 'fp32', 'bf16' or 'int8', got ${JSON.stringify(precision)}`)
    if (precision === 'int8' && device === 'cuda')
      fail(`load: precision 'int8' runs on the CPU (device 'cpu' or 'auto'); on CUDA, 'bf16' is the fast one`)
    if (options.pooling !== undefined && !isPooling(options.pooling)) {
      fail(`load: pooling must be ${POOLING_LIST}, got ${JSON.stringify(options.pooling)}`)
    }
    if (options.normalize !== undefined && typeof options.normalize !== 'boolean')
      fail(`load: normalize must be a boolean, got ${JSON.stringify(options.normalize)}`)
    if (options.maxLength !== undefined && (!Number.isSafeInteger(options.maxLength) || options.maxLength < 3))
      fail(`load: maxLength must be an integer >= 3, got ${JSON.stringify(options.maxLength)}`)
    const batchSize = options.batchSize ?? 32
    checkBatchSize(batchSize, 'load')
    const truncateOption = options.truncateDim
    if (truncateOption !== undefined && truncateOption !== null && (!Number.isSafeInteger(truncateOption) || truncateOption < 1))
      fail(`load: truncateDim must be a positive integer or null, got ${JSON.stringify(truncateOption)}`)

    // A Hugging Face Hub id: its snapshot in huggingface_hub's cache, downloaded where missing (lib/hub/hub-model.ts).
    const abs = resolve(await resolveModel(dir))
    await checkDirectory(abs)
    // The transformer's files are at the top (current layout) or in the folder modules.json names for
    // its Transformer module (older layout: 0_BERT/ and the like).
    const st = await readSentenceTransformersConfig(abs).catch((e: Error) => fail(e.message))
    const modelDir = st.transformerDir
    checkModelFiles(modelDir, modelDir === abs ? undefined : `the Transformer module in ${join(abs, 'modules.json')}`)
    const config = await readHfConfig(modelDir).catch((e: Error) => fail(e.message))
    // Sized here as well as in the worker's BertModel.load: an absurd config.json is refused in
    // microseconds, before a worker thread is started for it.
    try {
      checkModelFits(config, { source: join(modelDir, 'config.json') })
    } catch (e) {
      throw new RangeError(`SentenceEncoder: ${(e as Error).message}`)
    }
    let pooling = options.pooling ?? st.pooling
    if (!pooling && st.unsupportedPooling) {
      fail(
        `${st.poolingFile} asks for ${st.unsupportedPooling} pooling, which is not implemented (pass pooling: ${POOLING_LIST} to override)`,
      )
    }
    pooling ??= 'cls'
    const dense = await denseModules(st, config.hiddenSize).catch((e: Error) => fail(e.message))
    const normalize = options.normalize ?? st.normalize ?? false
    // Tokens per sentence: the option wins over the directory's max_seq_length (as setting
    // SentenceTransformer.max_seq_length does), else 128. The model's positions clamp either, not an
    // error: each is a truncation limit and the positions are one more that always applies, so one
    // maxLength (the README's 128) fits every model, and a max_seq_length beyond the positions (on which
    // sentence-transformers fails at the first longer sentence) still encodes. encoder.maxLength tells.
    const positions = config.maxPositionEmbeddings - positionOffset(config)
    const maxLength = Math.min(options.maxLength ?? st.maxSeqLength ?? 128, positions)

    const entry = workerEntry()
    const worker = new Worker(entry.file, {
      workerData: { dir: modelDir, device, precision, dense } satisfies InitData,
      ...(entry.execArgv ? { execArgv: entry.execArgv } : {}),
    })
    const ready = await new Promise<Extract<FromWorker, { type: 'ready' }>>((res, rej) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === 'ready') done(() => res(m))
        else if (m.type === 'load-error')
          done(() =>
            rej(new Error(m.message.startsWith('SentenceEncoder') ? m.message : `SentenceEncoder: cannot load ${modelDir}: ${m.message}`)),
          )
      }
      const onError = (e: Error) =>
        done(() => rej(new Error(`SentenceEncoder: the worker thread failed while loading ${abs}: ${e.message}`)))
      const onExit = (code: number) =>
        done(() => rej(new Error(`SentenceEncoder: the worker thread exited (code ${code}) while loading ${abs}`)))
      const done = (f: () => void) => {
        worker.off('message', onMessage).off('error', onError).off('exit', onExit)
        f()
      }
      worker.on('message', onMessage).on('error', onError).on('exit', onExit)
    }).catch(async (e: Error) => {
      await worker.terminate()
      throw e
    })
    const truncate = truncateOption === undefined ? (st.truncateDim ?? null) : truncateOption
    if (truncate !== null && truncate > ready.dimension) {
      await worker.terminate()
      fail(
        `load: truncateDim ${truncate}${truncateOption === undefined ? ' (config_sentence_transformers.json)' : ''} is more than the model's ${ready.dimension} dimensions`,
      )
    }
    const truncateDim = truncate !== null && truncate < ready.dimension ? truncate : null
    return new SentenceEncoder(
      worker,
      abs,
      truncateDim ?? ready.dimension,
      ready.device,
      ready.precision,
      pooling,
      normalize,
      maxLength,
      st.doLowerCase ?? false,
      batchSize,
      ready.note,
      ready.precisionNote,
      Object.freeze({ ...st.prompts }),
      st.defaultPromptName,
      st.includePrompt,
      truncateDim,
      options.similarityFn ?? st.similarityFnName ?? 'cosine',
    )
  }

  /** Queries -> vectors, as sentence-transformers' encode_query: with the model's 'query' prompt when it has one. */
  encodeQuery(query: string, options?: EmbedOptions): Promise<Float32Array>
  encodeQuery(queries: readonly string[], options?: EmbedOptions): Promise<Float32Array[]>
  encodeQuery(input: string | readonly string[], options: EmbedOptions = {}): Promise<Float32Array | Float32Array[]> {
    return this.encode(input as string[], this.withRole(ROLE_PROMPTS.query, options))
  }

  /**
   * Documents -> vectors, as sentence-transformers' encode_document: with the model's 'document' prompt, else its
   * 'passage' or 'corpus' prompt, when it has one.
   */
  encodeDocument(document: string, options?: EmbedOptions): Promise<Float32Array>
  encodeDocument(documents: readonly string[], options?: EmbedOptions): Promise<Float32Array[]>
  encodeDocument(input: string | readonly string[], options: EmbedOptions = {}): Promise<Float32Array | Float32Array[]> {
    return this.encode(input as string[], this.withRole(ROLE_PROMPTS.document, options))
  }

  /** The prefix encodeQuery ('query') or encodeDocument ('document') puts before each text (the default prompt, or ''). */
  rolePrefix(role: 'query' | 'document'): string {
    return this.promptFor(this.rolePrompt(ROLE_PROMPTS[role], {}))
  }

  /** The options with the role's prompt added (options that are not an object go on to encode, which names them). */
  private withRole(names: readonly string[], options: EmbedOptions): EmbedOptions {
    return options !== null && typeof options === 'object' ? { ...options, ...this.rolePrompt(names, options) } : options
  }

  /** The first of `names` the model has as a prompt, unless the call names a prompt itself. */
  private rolePrompt(names: readonly string[], options: EmbedOptions): { promptName?: string } {
    if (options.prompt !== undefined || options.promptName !== undefined) return {}
    const name = names.find((n) => Object.hasOwn(this.prompts, n))
    return name === undefined ? {} : { promptName: name }
  }

  /**
   * The prefix of one encode() call: `prompt`, else the named prompt, else the default prompt, else ''
   * (sentence-transformers' rule). An unknown name is an Error listing the model's prompts.
   */
  promptFor(options: Pick<EmbedOptions, 'prompt' | 'promptName'>, where = 'encode'): string {
    const { prompt, promptName } = options
    if (prompt !== undefined && promptName !== undefined) fail(`${where}: give prompt or promptName, not both`)
    if (prompt !== undefined && typeof prompt !== 'string') fail(`${where}: prompt must be a string, got ${describe(prompt)}`)
    if (promptName !== undefined && (typeof promptName !== 'string' || !Object.hasOwn(this.prompts, promptName))) {
      const known = Object.keys(this.prompts)
      fail(
        `${where}: promptName ${JSON.stringify(promptName)} is not one of the model's prompts (${known.length ? known.map((k) => JSON.stringify(k)).join(', ') : `none: ${this.dir} has no config_sentence_transformers.json prompts`})`,
      )
    }
    const name = promptName ?? (prompt === undefined ? this.defaultPromptName : undefined)
    return prompt ?? (name !== undefined ? this.prompts[name] : '')
  }

  /** One sentence -> its vector ('' embeds as [CLS] [SEP], as in sentence-transformers). */
  encode(sentence: string, options?: EmbedOptions): Promise<Float32Array>
  /** Sentences -> one vector each, in input order. */
  encode(sentences: readonly string[], options?: EmbedOptions): Promise<Float32Array[]>
  async encode(input: string | readonly string[], options: EmbedOptions = {}): Promise<Float32Array | Float32Array[]> {
    this.checkOpen('encode')
    const single = typeof input === 'string'
    if (!single && !Array.isArray(input)) fail(`encode: expected a string or an array of strings, got ${describe(input)}`)
    const sentences: readonly string[] = single ? [input] : input
    for (let i = 0; i < sentences.length; i++) {
      const s = sentences[i]
      const where = single ? 'encode: the sentence' : `encode: sentences[${i}]`
      if (typeof s !== 'string') fail(`${where} is ${describe(s)}, expected a string`)
    }
    if (options === null || typeof options !== 'object') fail('encode: options must be an object')
    rejectUnknown('encode', options, ['batchSize', 'sortByLength', 'onProgress', 'prompt', 'promptName'])
    const prefix = this.promptFor(options)
    const { onProgress } = options
    if (onProgress !== undefined && typeof onProgress !== 'function')
      fail(`encode: onProgress must be a function, got ${describe(onProgress)}`)
    const batchSize = options.batchSize ?? this.batchSize
    checkBatchSize(batchSize, 'encode')
    const sortByLength = options.sortByLength ?? true
    if (typeof sortByLength !== 'boolean') fail(`encode: sortByLength must be a boolean, got ${JSON.stringify(sortByLength)}`)
    if (!sentences.length) return []
    const run: RunOptions = {
      batchSize,
      maxLength: this.maxLength,
      lowercase: this.lowercase,
      pooling: this.pooling,
      normalize: this.normalize,
      sortByLength,
      truncateDim: this.truncateDim,
      // include_prompt false: the pooling leaves the prompt's tokens out.
      ...(prefix !== '' && !this.includePrompt ? { excludePrompt: prefix } : {}),
    }

    const id = this.nextId++
    const result = new Promise<Float32Array[]>((resolve, reject) => {
      this.requests.set(id, { id, results: new Array<Float32Array>(sentences.length), done: 0, onProgress, resolve, reject })
    })
    this.worker.ref()
    try {
      for (let s = 0; s < sentences.length; s += POST_CHUNK) {
        if (s > 0) {
          await new Promise((r) => setImmediate(r)) // keep the event loop responsive for huge inputs
          if (!this.requests.has(id)) break // closed or failed meanwhile
        }
        const last = s + POST_CHUNK >= sentences.length
        const chunk = sentences.slice(s, s + POST_CHUNK)
        this.post({ type: 'encode', id, sentences: prefix ? chunk.map((x) => prefix + x) : chunk, last, options: run })
      }
    } catch (e) {
      this.settle(id, e as Error)
    }
    const vectors = await result
    return single ? vectors[0] : vectors
  }

  /**
   * Each query's topK corpus entries by cosine similarity (by dot product for a model whose similarityFn is 'dot'),
   * best first: `{ indices, scores }`.
   * queries: sentences (encoded here) or vectors; corpus: sentences, vectors (an array, or one flat
   * Float32Array of `dimension`-long rows), a VectorIndex built once for many searches, or a BinaryIndex of the
   * corpus vectors' signs (Hamming distance, then rescored with the float queries: `rescore`). The scores
   * come from the native GEMM, a block of corpus rows at a time, on the model's device (CUDA when the
   * model runs there; a VectorIndex searches where it lives), handing the event loop back every few
   * milliseconds (VectorIndex.searchAsync).
   */
  search(query: string, corpus: SearchCorpus, options?: EncoderSearchOptions): Promise<SearchResult>
  search(queries: readonly string[] | VectorsInput, corpus: SearchCorpus, options?: EncoderSearchOptions): Promise<SearchResult[]>
  async search(
    queries: string | readonly string[] | VectorsInput,
    corpus: SearchCorpus,
    options: EncoderSearchOptions = {},
  ): Promise<SearchResult | SearchResult[]> {
    this.checkOpen('search')
    if (options === null || typeof options !== 'object') fail('search: options must be an object')
    rejectUnknown('search', options, ['topK', 'batchSize', 'rescore', 'rescoreWith'])
    const { topK, batchSize, rescore, rescoreWith } = options
    if ((rescore !== undefined || rescoreWith !== undefined) && !(corpus instanceof BinaryIndex))
      fail('search: rescore and rescoreWith apply to a BinaryIndex corpus')
    const single = typeof queries === 'string'
    const q = await this.vectorsOf('search: queries', single ? [queries] : queries, batchSize)
    if (corpus instanceof BinaryIndex) {
      const hits = await corpus
        .searchAsync(q, {
          ...(topK === undefined ? {} : { topK }),
          ...(rescore === undefined ? {} : { rescore }),
          ...(rescoreWith === undefined ? {} : { rescoreWith }),
        })
        .catch((e: Error) => fail(e.message))
      return single ? hits[0] : hits
    }
    const vectors = corpus instanceof VectorIndex ? null : await this.vectorsOf('search: corpus', corpus, batchSize)
    const index = vectors
      ? prefixErrors(() =>
          VectorIndex.from(vectors, this.dimension, { device: this.device, similarityFn: searchSimilarity(this.similarityFn) }),
        )
      : (corpus as VectorIndex)
    try {
      const hits = await index.searchAsync(q, topK === undefined ? {} : { topK }).catch((e: Error) => fail(e.message))
      return single ? hits[0] : hits
    } finally {
      if (index !== corpus) index.dispose()
    }
  }

  /**
   * The similarity of two vectors by the model's function (similarityFn: cosine by default, which is the dot product
   * when both are normalised; sentence-transformers' SentenceTransformer.similarity).
   */
  similarity(a: ArrayLike<number>, b: ArrayLike<number>): number
  /**
   * Similarities of vectors, queries × corpus (cosine and dot by the native GEMM): one Float32Array of
   * corpus.length scores per query. corpus may also be one flat Float32Array of `dimension`-long rows.
   */
  similarity(queries: readonly ArrayLike<number>[], corpus: VectorsInput): Float32Array[]
  similarity(a: ArrayLike<number> | readonly ArrayLike<number>[], b: ArrayLike<number> | VectorsInput): number | Float32Array[] {
    if (Array.isArray(a) && a.length > 0 && typeof a[0] !== 'number') {
      const dim = (a[0] as ArrayLike<number>)?.length
      return prefixErrors(
        () => similarityMatrix(this.similarityFn, a as readonly ArrayLike<number>[], b as VectorsInput, dim),
        'similarity',
      )
    }
    return this.pairSimilarity(a as ArrayLike<number>, b as ArrayLike<number>)
  }

  private pairSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
    if (!a || !b || typeof a.length !== 'number' || typeof b.length !== 'number')
      fail('similarity: expected two vectors (Float32Array or number[])')
    if (a.length !== b.length) fail(`similarity: vectors have different lengths (${a.length} and ${b.length})`)
    for (const [name, v] of [
      ['a', a],
      ['b', b],
    ] as const) {
      for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) fail(`similarity: ${name}[${i}] is ${v[i]}, not a finite number`)
    }
    return pairSimilarity(this.similarityFn, a, b)
  }

  /**
   * This encoder with LangChain.js's Embeddings methods (embedDocuments, embedQuery: number arrays), for
   * LangChain vector stores and retrievers. Closing the encoder is still the caller's business.
   */
  asLangChainEmbeddings(options: { batchSize?: number } = {}): LangChainEmbeddings {
    this.checkOpen('asLangChainEmbeddings')
    if (options === null || typeof options !== 'object') fail('asLangChainEmbeddings: options must be an object')
    rejectUnknown('asLangChainEmbeddings', options, ['batchSize'])
    if (options.batchSize !== undefined) checkBatchSize(options.batchSize, 'asLangChainEmbeddings')
    return new LangChainEmbeddings(this, options)
  }

  /** Stops the worker and frees the model's native memory; pending encode() calls reject. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing
    this.closed = true
    const closedError = new Error('SentenceEncoder: closed while encoding')
    for (const id of [...this.requests.keys()]) this.settle(id, closedError)
    this.closing = (async () => {
      if (!this.dead) {
        this.worker.ref()
        const acked = new Promise<void>((res) => {
          const on = (m: FromWorker) => {
            if (m.type === 'closed') res()
          }
          this.worker.on('message', on)
          this.worker.once('exit', () => res())
        })
        try {
          this.post({ type: 'close' })
          // The worker disposes the model after the batch it is computing; don't wait forever.
          let timer: NodeJS.Timeout | undefined
          await Promise.race([acked, new Promise<void>((res) => (timer = setTimeout(res, 10_000)))])
          clearTimeout(timer)
        } catch {
          // worker already gone
        }
      }
      await this.worker.terminate()
    })()
    return this.closing
  }

  /** Whether close() was called. */
  get isClosed(): boolean {
    return this.closed
  }

  /** Sentences -> their vectors; vectors pass through (checked later by the search). */
  private async vectorsOf(where: string, input: unknown, batchSize: number | undefined): Promise<VectorsInput> {
    if (input instanceof Float32Array) return input
    if (!Array.isArray(input)) fail(`${where} must be sentences or vectors, got ${describe(input)}`)
    if (input.length === 0) fail(`${where} is empty`)
    if (typeof input[0] !== 'string') return input as VectorsInput
    return this.encode(input as string[], batchSize === undefined ? {} : { batchSize })
  }

  private post(m: ToWorker): void {
    if (this.dead) throw this.dead
    this.worker.postMessage(m)
  }

  private checkOpen(what: string): void {
    if (this.closed) fail(`${what}: the encoder is closed`)
    if (this.dead) fail(`${what}: the encoder's worker thread stopped (${this.dead.message})`)
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'batch') {
      const r = this.requests.get(m.id)
      if (!r) return
      const H = this.dimension,
        buf = m.vectors.buffer,
        off = m.vectors.byteOffset
      for (let j = 0; j < m.indices.length; j++) r.results[m.indices[j]] = new Float32Array(buf, off + j * H * 4, H)
      r.done += m.indices.length
      if (r.onProgress) {
        try {
          r.onProgress({ done: r.done, total: r.results.length })
        } catch (e) {
          this.settle(m.id, e instanceof Error ? e : new Error(String(e)))
        }
      }
    } else if (m.type === 'done') {
      const r = this.requests.get(m.id)
      if (!r) return
      this.requests.delete(m.id)
      this.idle()
      r.resolve(r.results)
    } else if (m.type === 'error') {
      this.settle(m.id, new Error(m.message))
    }
  }

  private settle(id: number, e: Error): void {
    const r = this.requests.get(id)
    if (!r) return
    this.requests.delete(id)
    this.idle()
    r.reject(e)
  }

  private idle(): void {
    if (!this.requests.size && !this.closing) this.worker.unref()
  }

  private die(e: Error): void {
    if (this.dead || this.closing) return
    this.dead = e
    for (const id of [...this.requests.keys()]) this.settle(id, new Error(`SentenceEncoder: the worker thread stopped: ${e.message}`))
  }
}

/** What search() searches: sentences, vectors, an index of vectors, or of their signs. */
export type SearchCorpus = readonly string[] | VectorsInput | VectorIndex | BinaryIndex

export interface EncoderSearchOptions {
  /** Hits per query (default 10); more than the corpus holds returns the whole corpus. */
  topK?: number
  /** Sentences per forward pass when queries or corpus are sentences. */
  batchSize?: number
  /** A BinaryIndex corpus: its oversampling for rescoring (BinarySearchOptions.rescore; default 4, 0: none). */
  rescore?: number
  /** A BinaryIndex corpus: the full vectors its candidates are rescored by (BinarySearchOptions.rescoreWith). */
  rescoreWith?: BinarySearchOptions['rescoreWith']
}

/** Runs f, giving its errors this class's prefix ('search: corpus is empty' -> 'SentenceEncoder: search: ...'). */
function prefixErrors<T>(f: () => T, rename?: string): T {
  try {
    return f()
  } catch (e) {
    const m = (e as Error).message
    fail(rename ? m.replace(/^search:/, `${rename}:`) : m)
  }
}

function checkBatchSize(n: unknown, where: string): void {
  if (!Number.isSafeInteger(n) || (n as number) < 1) fail(`${where}: batchSize must be a positive integer, got ${JSON.stringify(n)}`)
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? `an object (${Object.prototype.toString.call(v)})` : `a ${typeof v} (${String(v).slice(0, 40)})`
}
