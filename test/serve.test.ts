// `simcsepp serve` and serveEmbeddings: OpenAI's embeddings API and text-embeddings-inference's over a tiny model,
// held to SentenceEncoder.encode bit for bit (the JSON carries float32 values exactly; base64 carries their bytes);
// prompts, shortened vectors, token counts, requests encoded together, bad requests refused with 4xx and nothing
// encoded, and a clean stop on SIGTERM.
import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SentenceEncoder } from '../lib/index.js'
import { serveEmbeddings } from '../lib/index.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'
import { cli, needsCli, tempDir } from './helpers/train-corpus.js'

const dir = await saveTinyModel({ seed: 3, dir: tempDir('simcsepp-serve-'), pooling: 'mean' })
writeFileSync(join(dir, 'config_sentence_transformers.json'), JSON.stringify({ prompts: { query: 'query: ' }, default_prompt_name: null }))
const encoder = await SentenceEncoder.load(dir, { normalize: false, device: 'cpu' })
const server = await serveEmbeddings(encoder, { port: 0, name: 'tiny', maxInputs: 40 })
t.teardown(async () => {
  await server.close()
  await encoder.close()
})

const post = async (path: string, body: unknown) => {
  const r = await fetch(server.url + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) })
  return { status: r.status, json: (await r.json()) as any } // eslint-disable-line @typescript-eslint/no-explicit-any
}
const unit = (v: Float32Array) => {
  let s = 0
  for (const x of v) s += x * x
  return v.map((x) => x / Math.sqrt(s))
}
const texts = sentences(5, 11, 12)

t.test('POST /v1/embeddings: the encoder’s vectors at unit length, in order, with token counts', async (t) => {
  const want = (await encoder.encode(texts)) as Float32Array[]
  const r = await post('/v1/embeddings', { input: texts, model: 'text-embedding-3-small' })
  t.equal(r.status, 200)
  t.match(r.json, { object: 'list', model: 'tiny' })
  t.same(
    r.json.data.map((d: { index: number; object: string }) => [d.index, d.object]),
    texts.map((_, i) => [i, 'embedding']),
  )
  r.json.data.forEach((d: { embedding: number[] }, i: number) =>
    t.same(Float32Array.from(d.embedding), unit(want[i]), `sentence ${i}: the same float32 values`),
  )
  const tokenizer = await Tokenizer.load(dir)
  const mask = (await tokenizer.encodeBatch(texts, { maxLength: encoder.maxLength })).attentionMask
  const tokens = mask.reduce((a, b) => a + b, 0)
  t.same(r.json.usage, { prompt_tokens: tokens, total_tokens: tokens })

  const b64 = await post('/v1/embeddings', { input: texts[0], model: 'x', encoding_format: 'base64' })
  const bytes = Buffer.from(b64.json.data[0].embedding, 'base64')
  t.same(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), unit(want[0]), 'base64: the float32 bytes')
  const short = await post('/v1/embeddings', { input: [texts[1]], model: 'x', dimensions: 8 })
  t.same(Float32Array.from(short.json.data[0].embedding), unit(want[1].subarray(0, 8)), 'dimensions 8: the first 8, normalised')
  const query = await post('/v1/embeddings', { input: texts[2], model: 'x', prompt_name: 'query' })
  const q = (await encoder.encode(texts[2], { promptName: 'query' })) as Float32Array
  t.same(Float32Array.from(query.json.data[0].embedding), unit(q), "prompt_name: the model's query prompt")
  const models = await (await fetch(server.url + '/v1/models')).json()
  t.same(models, { object: 'list', data: [{ id: 'tiny', object: 'model', owned_by: 'simcsepp' }] })
})

t.test('POST /embed (text-embeddings-inference): normalised by default, raw on request', async (t) => {
  const want = (await encoder.encode(texts.slice(0, 2))) as Float32Array[]
  const r = await post('/embed', { inputs: texts.slice(0, 2) })
  t.equal(r.status, 200)
  t.same(
    r.json.map((v: number[]) => Float32Array.from(v)),
    want.map(unit),
  )
  const raw = await post('/embed', { inputs: texts[0], normalize: false })
  t.same(Float32Array.from(raw.json[0]), want[0], 'one string: a list of one raw vector')
  const info = await (await fetch(server.url + '/info')).json()
  t.match(info, { model_id: 'tiny', max_input_length: encoder.maxLength, max_client_batch_size: 40, dimension: encoder.dimension })
  t.same(await (await fetch(server.url + '/health')).json(), { status: 'ok' })
})

t.test('requests that arrive together are encoded together, each answered with its own vectors', async (t) => {
  const many = sentences(24, 5, 10)
  const want = (await encoder.encode(many)) as Float32Array[]
  const before = server.stats.batches
  const answers = await Promise.all(many.map((s) => post('/embed', { inputs: s, normalize: false })))
  const calls = server.stats.batches - before
  t.ok(calls < many.length, `${many.length} requests in ${calls} encoder calls`)
  answers.forEach((a, i) => {
    const got = Float32Array.from(a.json[0])
    const err = Math.max(...got.map((x, k) => Math.abs(x - want[i][k])))
    t.ok(err < 1e-5, `request ${i}: its own sentence's vector (within ${err.toExponential(1)}: batched with others)`)
  })
})

t.test('a burst beyond --max-queue is told to retry (429), the rest are answered', async (t) => {
  const small = await serveEmbeddings(encoder, { port: 0, maxQueue: 1 })
  const ask = async (input: string | string[]) => {
    const r = await fetch(small.url + '/v1/embeddings', { method: 'POST', body: JSON.stringify({ input, model: 'x' }) })
    return { status: r.status, json: (await r.json()) as { error?: { message: string; type: string } } }
  }
  // A long request keeps the encoder busy; of the requests sent meanwhile, one waits and the others are refused.
  const long = ask(sentences(2000, 4, 30))
  while (small.stats.batches === 0) await new Promise((r) => setTimeout(r, 2)) // its encoding has started
  const burst = await Promise.all(sentences(8, 9, 10).map((s) => ask(s)))
  t.equal((await long).status, 200)
  await small.close()
  const refused = burst.filter((a) => a.status === 429)
  t.same(burst.map((a) => a.status).sort(), [200, ...Array(7).fill(429)], `${refused.length} of 8 told to retry`)
  for (const a of refused)
    t.match(a.json.error, { message: /^overloaded: 1 sentences are waiting for the encoder; retry later$/, type: 'rate_limit_error' })
})

t.test('with an API key, every request but /health must bring it', async (t) => {
  const locked = await serveEmbeddings(encoder, { port: 0, apiKey: 'sk-local-123' })
  const ask = (auth?: string) =>
    fetch(locked.url + '/v1/embeddings', {
      method: 'POST',
      headers: auth ? { authorization: auth } : {},
      body: JSON.stringify({ input: 'a b', model: 'x' }),
    })
  const none = await ask()
  t.equal(none.status, 401)
  t.equal(none.headers.get('www-authenticate'), 'Bearer')
  t.match(await none.json(), { error: { message: /a valid API key is required: send Authorization: Bearer KEY/ } })
  t.equal((await ask('Bearer sk-local-12')).status, 401, 'a prefix of the key')
  t.equal((await ask('sk-local-123')).status, 401, 'without Bearer')
  t.equal((await ask('Bearer sk-local-123')).status, 200)
  t.equal((await fetch(locked.url + '/health')).status, 200, '/health needs no key')
  await locked.close()
  await t.rejects(serveEmbeddings(encoder, { apiKey: '' }), /apiKey must be a non-empty string/)
})

t.test('with corsOrigin, browsers may call it: preflight answered, responses marked', async (t) => {
  const open = await serveEmbeddings(encoder, { port: 0, corsOrigin: 'https://app.example.com', apiKey: 'k' })
  const preflight = await fetch(open.url + '/v1/embeddings', {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
  })
  t.equal(preflight.status, 204, 'no key needed for the preflight (browsers send none)')
  t.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example.com')
  t.match(preflight.headers.get('access-control-allow-headers'), /authorization/)
  const r = await fetch(open.url + '/embed', { method: 'POST', headers: { authorization: 'Bearer k' }, body: '{"inputs": "a b"}' })
  t.equal(r.status, 200)
  t.equal(r.headers.get('access-control-allow-origin'), 'https://app.example.com')
  await open.close()
  const closed = await fetch(server.url + '/health')
  t.equal(closed.headers.get('access-control-allow-origin'), null, 'none without corsOrigin')
})

t.test('bad requests: a 4xx naming the field, in each API’s error shape', async (t) => {
  const openai: [unknown, number, RegExp, string | null][] = [
    [{ model: 'x' }, 400, /input must be a string or a non-empty array of strings/, 'input'],
    [{ input: [], model: 'x' }, 400, /input must be a string or a non-empty array/, 'input'],
    [{ input: [[101, 2023]], model: 'x' }, 400, /input\[0\] is an array \(token ids are not accepted: send text\)/, 'input'],
    [{ input: Array(41).fill('a'), model: 'x' }, 400, /input holds 41 inputs, at most 40 per request/, 'input'],
    [{ input: 'a', encoding_format: 'int8' }, 400, /encoding_format must be float or base64/, 'encoding_format'],
    [{ input: 'a', dimensions: 0 }, 400, /dimensions must be an integer in \[1, 32\] \(got 0\)/, 'dimensions'],
    [{ input: 'a', prompt_name: 'nope' }, 400, /nope/, 'prompt_name'],
    ['{"input": ', 400, /the request body is not JSON/, null],
    [[1, 2], 400, /the request body must be a JSON object/, null],
  ]
  const calls = server.stats.batches
  for (const [body, status, message, param] of openai) {
    const r = await post('/v1/embeddings', body)
    t.equal(r.status, status, JSON.stringify(body).slice(0, 40))
    t.match(r.json.error, { message, type: 'invalid_request_error', param })
  }
  const tei = await post('/embed', { inputs: 'a', normalize: 'yes' })
  t.equal(tei.status, 422)
  t.same(tei.json, { error: 'normalize must be a boolean', error_type: 'Validation' })
  t.equal(server.stats.batches, calls, 'nothing was encoded')
  const get = await fetch(server.url + '/v1/embeddings')
  t.equal(get.status, 405)
  t.equal(get.headers.get('allow'), 'POST')
  t.equal((await fetch(server.url + '/v2/nothing')).status, 404)
  const huge = await fetch(server.url + '/embed', { method: 'POST', body: 'x'.repeat((16 << 20) + 1) })
  t.equal(huge.status, 413)
})

t.test('simcsepp serve: listens, answers, and stops on SIGTERM once its requests are done', needsCli, async (t) => {
  const child = spawn(process.execPath, [cli, 'serve', '--model', dir, '--port', '0', '--device', 'cpu'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
      const m = /on (http:\/\/[^\s]+)\n/.exec(stderr)
      if (m) resolve(m[1])
    })
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)))
  })
  const r = await fetch(url + '/v1/embeddings', { method: 'POST', body: JSON.stringify({ input: ['a b c'], model: 'm' }) })
  const body = (await r.json()) as { data: { embedding: number[] }[]; model: string }
  t.equal(body.model, dir.split('/').pop(), 'named after its directory')
  t.same(Float32Array.from(body.data[0].embedding), unit((await encoder.encode('a b c')) as Float32Array))
  const code = await new Promise<number | null>((resolve) => {
    child.on('exit', resolve)
    child.kill('SIGTERM')
  })
  t.equal(code, 0, stderr)
  t.match(stderr, /SIGTERM: finishing the requests in progress\nsimcsepp: stopped after 1 requests \(1 sentences in 1 encoder calls\)/)
})
