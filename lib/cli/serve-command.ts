// `simcsepp serve`: a model behind OpenAI's embeddings API and text-embeddings-inference's (lib/embed/server.ts),
// until SIGINT or SIGTERM, which let the requests in progress finish first.
import { serveEmbeddings } from '../embed/server.js'
import { num, parseFlags, UsageError } from './args.js'
import { encoderFlags, loadEncoder } from './encode-command.js'
import { serveUsage } from './help.js'
import { hubIdOf } from '../hub/hub-model.js'

export async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(serveUsage, {
    args: argv,
    options: {
      ...encoderFlags,
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      name: { type: 'string' },
      'max-batch': { type: 'string' },
      'max-inputs': { type: 'string' },
      'max-queue': { type: 'string' },
      cors: { type: 'string' },
    },
  })
  if (!values.model) throw new UsageError('serve: --model DIR is required')
  if (values.normalize) throw new UsageError('serve: --normalize is the requests’ choice (OpenAI: always; /embed: normalize, default true)')
  const port = num('port', values.port, { int: true, min: 0, max: 65535 })
  const maxBatch = num('max-batch', values['max-batch'], { int: true, min: 1 })
  const maxInputs = num('max-inputs', values['max-inputs'], { int: true, min: 1 })
  const maxQueue = num('max-queue', values['max-queue'], { int: true, min: 1 })
  // The raw vectors: each API normalises as its requests ask.
  const encoder = await loadEncoder({ ...values, normalize: false })
  // The key from the environment: an argument would show in every process listing.
  const apiKey = process.env.SIMCSEPP_API_KEY || undefined
  const server = await serveEmbeddings(encoder, {
    host: values.host,
    port,
    name: values.name ?? hubIdOf(encoder.dir) ?? undefined, // (a Hub model's folder is named by its commit)
    maxBatch,
    maxInputs,
    maxQueue,
    apiKey,
    corsOrigin: values.cors,
  })
  process.stderr.write(
    `simcsepp: serving ${encoder.dir} (${encoder.dimension} dimensions, ${encoder.device}) on ${server.url}\n` +
      `  OpenAI: POST ${server.url}/v1/embeddings   text-embeddings-inference: POST ${server.url}/embed\n` +
      `  ${apiKey ? 'requests need the key of SIMCSEPP_API_KEY (Authorization: Bearer KEY)' : 'no API key: anyone who reaches the port may embed (set SIMCSEPP_API_KEY to require one)'}\n`,
  )
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stderr.write(`simcsepp: ${signal}: finishing the requests in progress\n`)
      void server
        .close()
        .then(() => encoder.close())
        .then(resolve)
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  const { requests, batches, sentences } = server.stats
  process.stderr.write(`simcsepp: stopped after ${requests} requests (${sentences} sentences in ${batches} encoder calls)\n`)
}
