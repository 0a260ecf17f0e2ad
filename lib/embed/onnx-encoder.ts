// OnnxEncoder: sentence vectors from a file `simcsepp export` wrote, run by onnxruntime-node, so that an export
// (its fp16 or int8 weights above all) can be checked with the tools that check the model itself (`simcsepp eval
// --onnx FILE`). It reads the folder as transformers.js does: the tokenizer beside onnx/, the max length from
// tokenizer_config.json's model_max_length; the graph's sentence_embedding output is already pooled (and
// normalised) as the export was asked. Batches are length-sorted as SentenceEncoder's, vectors in input order.
import { existsSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { Tokenizer } from '../tokenizer.js'
import { readJsonFile } from '../util/json.js'
import { EmbeddingEngine, tokenizePacked } from './engine.js'
import { loadOnnxruntime, onnxFeeds, type Ort, type OrtSession } from './onnxruntime.js'

export interface OnnxEncoderOptions {
  /** Tokens per sentence. Default: tokenizer_config.json's model_max_length, else 128. */
  maxLength?: number
  /** Sentences per run of the graph (default 32). */
  batchSize?: number
}

function fail(message: string): never {
  throw new Error(`OnnxEncoder: ${message}`)
}

export class OnnxEncoder {
  private constructor(
    private readonly ort: Ort,
    private session: OrtSession | null,
    private readonly tokenizer: Tokenizer,
    /** The .onnx file. */
    readonly file: string,
    /** The folder its tokenizer and config came from. */
    readonly dir: string,
    readonly maxLength: number,
    readonly batchSize: number,
  ) {}

  /** Opens `file` (an exported .onnx) with onnxruntime-node's CPU provider. */
  static async load(file: string, options: OnnxEncoderOptions = {}): Promise<OnnxEncoder> {
    if (typeof file !== 'string' || !file) fail(`expected the path of an .onnx file, got ${JSON.stringify(file)}`)
    if (options === null || typeof options !== 'object') fail('options must be an object')
    for (const k of Object.keys(options))
      if (k !== 'maxLength' && k !== 'batchSize') fail(`unknown option '${k}' (known options: maxLength, batchSize)`)
    const { maxLength, batchSize = 32 } = options
    if (maxLength !== undefined && (!Number.isSafeInteger(maxLength) || maxLength < 3))
      fail(`maxLength must be an integer >= 3, got ${JSON.stringify(maxLength)}`)
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) fail(`batchSize must be a positive integer, got ${JSON.stringify(batchSize)}`)
    const path = resolve(file)
    if (!existsSync(path) || !statSync(path).isFile()) fail(`${file}: no such file`)
    // simcsepp export's layout (transformers.js's): DIR/onnx/model*.onnx beside DIR/tokenizer.json.
    const dir = basename(dirname(path)) === 'onnx' ? dirname(dirname(path)) : dirname(path)
    if (!existsSync(join(dir, 'tokenizer.json')))
      fail(`${dir} has no tokenizer.json beside ${basename(path)} (not a folder simcsepp export wrote?)`)
    const ort = await loadOnnxruntime()
    if (typeof ort === 'string') fail(`${ort}: npm install onnxruntime-node to run .onnx files`)
    const tokenizer = await Tokenizer.load(dir)
    const config = (await readJsonFile(join(dir, 'tokenizer_config.json'), { optional: true })) as
      { model_max_length?: unknown } | undefined
    const saved = config?.model_max_length
    const length = maxLength ?? (typeof saved === 'number' && Number.isSafeInteger(saved) && saved >= 3 ? saved : 128)
    let session: OrtSession
    try {
      session = await ort.InferenceSession.create(path, {})
    } catch (e) {
      fail(`${file}: onnxruntime cannot load it (${(e as Error).message.split('\n')[0]})`)
    }
    if (!session.outputNames.includes('sentence_embedding')) {
      await session.release()
      fail(`${file} has no sentence_embedding output (outputs: ${session.outputNames.join(', ')}); export it with simcsepp export`)
    }
    return new OnnxEncoder(ort, session, tokenizer, path, dir, length, batchSize)
  }

  /** One vector per sentence, in input order. */
  async encode(sentences: readonly string[]): Promise<Float32Array[]> {
    const session = this.session ?? fail('encode after close()')
    if (!Array.isArray(sentences) || sentences.some((s) => typeof s !== 'string')) fail('encode expects an array of strings')
    const tok = await tokenizePacked(this.tokenizer, sentences, this.maxLength)
    const out: Float32Array[] = new Array(sentences.length)
    for (const indices of EmbeddingEngine.batches(tok, this.batchSize, true)) {
      const r = (await session.run(onnxFeeds(this.ort, tok, indices, session.inputNames))).sentence_embedding
      const H = r.dims[1]
      indices.forEach((i, row) => (out[i] = r.data.slice(row * H, (row + 1) * H)))
    }
    return out
  }

  async close(): Promise<void> {
    const s = this.session
    this.session = null
    await s?.release()
  }
}
