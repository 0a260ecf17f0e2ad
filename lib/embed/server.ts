// An HTTP embedding service over a SentenceEncoder, speaking the two APIs other tools already call:
//   OpenAI's:  POST /v1/embeddings { input, model, encoding_format?, dimensions? }, GET /v1/models
//              (OpenAI's SDKs, LangChain's OpenAIEmbeddings, LlamaIndex, ... with their base URL set here);
//   Hugging Face text-embeddings-inference's: POST /embed { inputs, normalize?, prompt_name? }, GET /info, GET /health.
// Requests that arrive while the encoder is busy are encoded together in its next call (up to maxBatch sentences),
// so many small concurrent requests cost a few forward passes, not one each; there is no waiting for a batch to fill.
// Bad requests get a 4xx with a short message naming the field and nothing is encoded; a failing encode is a 500 for
// the requests in that call only.
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { basename } from 'node:path'
import { Tokenizer } from '../tokenizer.js'
import { float32Json } from '../util/float32-json.js'
import { readSentenceTransformersConfig } from './sentence-transformers-config.js'
import type { SentenceEncoder } from './sentence-encoder.js'

export interface EmbeddingServerOptions {
  /** Interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface). */
  host?: string
  /** Port (default 8080; 0: any free port, see `url`). */
  port?: number
  /** The model's name in responses and /v1/models (default: its directory's name). Requests may name any model. */
  name?: string
  /** Most inputs one request may hold (default 2048, OpenAI's limit). */
  maxInputs?: number
  /** Largest request body in bytes (default 16 MiB). */
  maxBodyBytes?: number
  /** Most sentences per encode call when waiting requests are encoded together (default 512). */
  maxBatch?: number
  /**
   * Most sentences waiting for the encoder (default 16384): a request beyond them gets a 429 at once, so a burst
   * larger than the machine can encode is told to come back rather than held until clients time out.
   */
  maxQueue?: number
  /**
   * A key every request but GET /health must bring as `Authorization: Bearer KEY` (what OpenAI's clients send as
   * their api_key); without it, a 401. Default: none (anyone who reaches the port may embed).
   */
  apiKey?: string
  /**
   * Web pages of this origin (https://app.example.com, or '*' for any) may call the server from a browser: responses
   * carry CORS headers and preflight requests (OPTIONS) are answered. Default: none (browsers refuse cross-origin calls).
   */
  corsOrigin?: string
}

export interface EmbeddingServer {
  /** Where it listens: http://host:port. */
  readonly url: string
  /** Requests answered, encode calls made and sentences encoded so far. */
  readonly stats: { requests: number; batches: number; sentences: number }
  /** Stops listening, lets the requests in progress finish, then closes the connections (not the encoder). */
  close(): Promise<void>
}

/** A request's error: its status and message (and the body field it concerns). */
class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message)
  }
}

interface Job {
  texts: string[]
  /** The prompt before each text (encode's prompt: the pooling may leave it out). */
  prompt: string
  resolve: (v: Float32Array[]) => void
  reject: (e: Error) => void
}

/** Serves `encoder` over HTTP until close(). Load it with normalize false: the APIs normalise as they are asked. */
export async function serveEmbeddings(encoder: SentenceEncoder, options: EmbeddingServerOptions = {}): Promise<EmbeddingServer> {
  const o = {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 8080,
    name: options.name ?? basename(encoder.dir),
    maxInputs: options.maxInputs ?? 2048,
    maxBodyBytes: options.maxBodyBytes ?? 16 << 20,
    maxBatch: options.maxBatch ?? 512,
    maxQueue: options.maxQueue ?? 16384,
  }
  for (const k of ['maxInputs', 'maxBodyBytes', 'maxBatch', 'maxQueue'] as const)
    if (!Number.isSafeInteger(o[k]) || o[k] < 1) throw new RangeError(`serveEmbeddings: ${k} must be a positive integer (got ${o[k]})`)
  if (options.apiKey !== undefined && (typeof options.apiKey !== 'string' || options.apiKey === ''))
    throw new TypeError('serveEmbeddings: apiKey must be a non-empty string')
  // Compared as digests: the same length whatever the key, so the comparison takes the same time for any guess.
  const digest = (s: string) => createHash('sha256').update(s).digest()
  const key = options.apiKey === undefined ? null : digest(options.apiKey)
  const authorised = (req: IncomingMessage) => {
    if (!key) return true
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
    return m !== null && timingSafeEqual(digest(m[1]), key)
  }
  if (!Number.isSafeInteger(o.port) || o.port < 0 || o.port > 65535)
    throw new RangeError(`serveEmbeddings: port must be an integer in [0, 65535] (got ${o.port})`)
  // Token counts for OpenAI's usage field, from the model's own tokenizer (truncated as the encoder truncates).
  const tokenizer = await Tokenizer.load((await readSentenceTransformersConfig(encoder.dir)).transformerDir)
  const stats = { requests: 0, batches: 0, sentences: 0 }

  // Waiting requests, encoded together when the encoder is free.
  const queue: Job[] = []
  let busy = false
  let waiting = 0 // sentences in the queue
  const encode = ({ texts, prompt }: { texts: string[]; prompt: string }) => {
    if (waiting + texts.length > o.maxQueue && queue.length > 0)
      throw new RequestError(429, `overloaded: ${waiting} sentences are waiting for the encoder; retry later`)
    waiting += texts.length
    return new Promise<Float32Array[]>((resolve, reject) => (queue.push({ texts, prompt, resolve, reject }), pump()))
  }
  function pump(): void {
    if (busy || queue.length === 0) return
    const jobs: Job[] = []
    let count = 0
    // One prompt per call (a model whose pooling leaves the prompt out needs to know it): the waiting requests with
    // the first one's prompt, in arrival order.
    while (queue.length > 0 && (jobs.length === 0 || (count + queue[0].texts.length <= o.maxBatch && queue[0].prompt === jobs[0].prompt))) {
      const j = queue.shift()!
      jobs.push(j)
      count += j.texts.length
    }
    waiting -= count
    busy = true
    stats.batches++
    stats.sentences += count
    // The prompt resolved already (the model's default one when a request asked for none).
    encoder
      .encode(
        jobs.flatMap((j) => j.texts),
        { prompt: jobs[0].prompt },
      )
      .then(
        (vectors) => {
          let at = 0
          for (const j of jobs) j.resolve((vectors as Float32Array[]).slice(at, (at += j.texts.length)))
        },
        (e: Error) => jobs.forEach((j) => j.reject(e)),
      )
      .finally(() => {
        busy = false
        pump()
      })
  }

  /** The request's sentences and their prompt, after the checks every API shares. */
  const prompted = (input: unknown, field: string, promptName: unknown): { texts: string[]; prompt: string } => {
    const texts = typeof input === 'string' ? [input] : input
    if (!Array.isArray(texts) || texts.length === 0)
      throw new RequestError(400, `${field} must be a string or a non-empty array of strings`, field)
    if (texts.length > o.maxInputs)
      throw new RequestError(400, `${field} holds ${texts.length} inputs, at most ${o.maxInputs} per request`, field)
    const bad = texts.findIndex((s) => typeof s !== 'string')
    if (bad >= 0)
      throw new RequestError(
        400,
        `${field}[${bad}] is ${Array.isArray(texts[bad]) ? 'an array (token ids are not accepted: send text)' : JSON.stringify(texts[bad])}, expected a string`,
        field,
      )
    if (promptName !== undefined && typeof promptName !== 'string')
      throw new RequestError(400, 'prompt_name must be a string', 'prompt_name')
    let prefix: string
    try {
      prefix = encoder.promptFor(promptName === undefined ? {} : { promptName })
    } catch (e) {
      throw new RequestError(400, (e as Error).message.replace(/^SentenceEncoder: /, ''), 'prompt_name')
    }
    return { texts: texts as string[], prompt: prefix }
  }

  const openai = async (body: Record<string, unknown>): Promise<string> => {
    const request = prompted(body.input, 'input', body.prompt_name)
    const format = body.encoding_format ?? 'float'
    if (format !== 'float' && format !== 'base64')
      throw new RequestError(400, `encoding_format must be float or base64 (got ${JSON.stringify(format)})`, 'encoding_format')
    const dims = body.dimensions ?? encoder.dimension
    if (!Number.isSafeInteger(dims) || (dims as number) < 1 || (dims as number) > encoder.dimension)
      throw new RequestError(400, `dimensions must be an integer in [1, ${encoder.dimension}] (got ${JSON.stringify(dims)})`, 'dimensions')
    const [vectors, tokens] = await Promise.all([encode(request), tokenCount(request.texts.map((s) => request.prompt + s))])
    // OpenAI's vectors have unit length, also when shortened (the first `dimensions` values, normalised again).
    const data = vectors.map((v, index) => {
      const u = unit(v.subarray(0, dims as number))
      const embedding =
        format === 'base64' ? JSON.stringify(Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64')) : float32Json(u)
      return `{"object":"embedding","index":${index},"embedding":${embedding}}`
    })
    const usage = JSON.stringify({ prompt_tokens: tokens, total_tokens: tokens })
    return `{"object":"list","data":[${data.join(',')}],"model":${JSON.stringify(o.name)},"usage":${usage}}`
  }

  const tei = async (body: Record<string, unknown>): Promise<string> => {
    const request = prompted(body.inputs, 'inputs', body.prompt_name)
    const normalize = body.normalize ?? true
    if (typeof normalize !== 'boolean') throw new RequestError(422, 'normalize must be a boolean', 'normalize')
    const vectors = await encode(request)
    return `[${vectors.map((v) => float32Json(normalize ? unit(v) : v)).join(',')}]`
  }

  const tokenCount = async (texts: string[]): Promise<number> => {
    const batch = await tokenizer.encodeBatch(encoder.lowercase ? texts.map((s) => s.toLowerCase()) : texts, {
      maxLength: encoder.maxLength,
    })
    return batch.attentionMask.reduce((a, b) => a + b, 0)
  }

  const info = () =>
    JSON.stringify({
      model_id: o.name,
      model_dtype: encoder.precision,
      model_type: { embedding: { pooling: encoder.pooling } },
      max_input_length: encoder.maxLength,
      max_client_batch_size: o.maxInputs,
      dimension: encoder.dimension,
      device: encoder.device,
      prompts: encoder.prompts,
    })

  let inFlight = 0
  let drained: (() => void) | null = null
  const server = createServer((req, res) => {
    inFlight++
    stats.requests++
    handle(req, res).finally(() => {
      if (--inFlight === 0) drained?.()
    })
  })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    if (options.corsOrigin !== undefined) {
      res.setHeader('access-control-allow-origin', options.corsOrigin)
      if (options.corsOrigin !== '*') res.setHeader('vary', 'Origin')
      if (req.method === 'OPTIONS') {
        // A browser's preflight: which methods and headers the real request may use.
        res.writeHead(204, {
          'access-control-allow-methods': 'GET, POST',
          'access-control-allow-headers': 'authorization, content-type',
          'access-control-max-age': '86400',
        })
        req.resume()
        return void res.end()
      }
    }
    const isTei = path === '/embed' || path === '/info' || path === '/health'
    try {
      const routes: Record<string, [string, () => Promise<string> | string]> = {
        '/v1/embeddings': ['POST', async () => openai(await jsonBody(req, o.maxBodyBytes))],
        '/embeddings': ['POST', async () => openai(await jsonBody(req, o.maxBodyBytes))],
        '/v1/models': ['GET', () => JSON.stringify({ object: 'list', data: [{ id: o.name, object: 'model', owned_by: 'simcsepp' }] })],
        '/embed': ['POST', async () => tei(await jsonBody(req, o.maxBodyBytes))],
        '/info': ['GET', info],
        '/health': ['GET', () => '{"status":"ok"}'],
      }
      if (path !== '/health' && !authorised(req)) {
        res.setHeader('www-authenticate', 'Bearer')
        throw new RequestError(401, 'a valid API key is required: send Authorization: Bearer KEY')
      }
      const route = routes[path]
      if (!route) throw new RequestError(404, `no route ${path} (POST /v1/embeddings, POST /embed, GET /v1/models, /info, /health)`)
      if (req.method !== route[0]) {
        res.setHeader('allow', route[0])
        throw new RequestError(405, `${path} takes ${route[0]}, not ${req.method}`)
      }
      send(res, 200, await route[1]())
    } catch (e) {
      req.resume() // an unread body must not hold the connection
      const err = e instanceof RequestError ? e : new RequestError(500, `encoding failed: ${(e as Error).message}`)
      const body = isTei
        ? { error: err.message, error_type: err.status === 429 ? 'Overloaded' : err.status >= 500 ? 'Backend' : 'Validation' }
        : {
            error: {
              message: err.message,
              type: err.status >= 500 ? 'server_error' : err.status === 429 ? 'rate_limit_error' : 'invalid_request_error',
              param: err.param,
              code: null,
            },
          }
      send(res, err.status, JSON.stringify(body))
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(o.port, o.host, () => (server.off('error', reject), resolve()))
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${host}:${address.port}`,
    stats,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve))
      server.closeAllConnections()
      await closed
    },
  }
}

/** The request's JSON object, or a 4xx naming what is wrong with it. */
async function jsonBody(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBytes) throw new RequestError(413, `the request body exceeds ${maxBytes} bytes`)
    chunks.push(chunk)
  }
  let body: unknown
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new RequestError(400, 'the request body is not JSON')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new RequestError(400, 'the request body must be a JSON object')
  return body as Record<string, unknown>
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** v scaled to unit length (a copy; a zero vector stays zero). */
function unit(v: Float32Array): Float32Array {
  let s = 0
  for (const x of v) s += x * x
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0
  return v.map((x) => x * inv)
}
