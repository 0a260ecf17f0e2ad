// `simcsepp encode` and `simcsepp eval`: thin layers over SentenceEncoder and the STS evaluation.
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { SentenceEncoder } from '../embed/sentence-encoder.js'
import { evaluateStsFiles } from '../eval/sts.js'
import { DEVICE_REQUESTS } from '../device.js'
import { num, oneOf, UsageError } from './args.js'
import { stsTable } from './tables.js'

const encoderFlags = {
  model: { type: 'string' },
  device: { type: 'string' },
  pooling: { type: 'string' },
  normalize: { type: 'boolean' },
  'max-len': { type: 'string' },
  'batch-size': { type: 'string' },
} as const

function encoderOptions(v: Record<string, string | boolean | string[] | undefined>) {
  return {
    device: oneOf('device', v.device as string | undefined, DEVICE_REQUESTS),
    pooling: oneOf('pooling', v.pooling as string | undefined, ['cls', 'mean'] as const),
    normalize: v.normalize as boolean | undefined,
    maxLength: num('max-len', v['max-len'] as string | undefined, { int: true, min: 3 }),
    batchSize: num('batch-size', v['batch-size'] as string | undefined, { int: true, min: 1 }),
  }
}

/** simcsepp encode --model DIR [--file FILE] [sentences...] [--format json|f32] */
export async function encodeCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...encoderFlags, file: { type: 'string' }, format: { type: 'string', default: 'json' } },
  })
  if (!values.model) throw new UsageError('encode: --model DIR is required')
  const format = oneOf('format', values.format, ['json', 'f32'] as const)!
  if (!values.file && positionals.length === 0) throw new UsageError('encode: give sentences as arguments or --file FILE (one per line)')
  if (format === 'f32' && process.stdout.isTTY) throw new UsageError('encode --format f32 writes binary: redirect stdout to a file')
  const enc = await SentenceEncoder.load(values.model, encoderOptions(values))
  const write = (data: string | Uint8Array) =>
    new Promise<void>((resolve, reject) => process.stdout.write(data, (e) => (e ? reject(e) : resolve())))
  const emit = async (vectors: Float32Array[]) => {
    if (format === 'json') await write(vectors.map((v) => JSON.stringify(Array.from(v))).join('\n') + '\n')
    else for (const v of vectors) await write(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
  }
  try {
    if (positionals.length) await emit(await enc.encode(positionals))
    if (values.file) {
      // Streamed in chunks, one vector per line; blank lines cannot be embedded and are an error.
      const lines = createInterface({ input: createReadStream(values.file, { encoding: 'utf8' }), crlfDelay: Infinity })
      let chunk: string[] = [],
        lineNo = 0
      for await (const line of lines) {
        lineNo++
        if (line.trim() === '') throw new Error(`${values.file}:${lineNo}: blank line (encode writes one vector per line)`)
        chunk.push(line)
        if (chunk.length === 4096) {
          await emit(await enc.encode(chunk))
          chunk = []
        }
      }
      if (chunk.length) await emit(await enc.encode(chunk))
    }
  } finally {
    await enc.close()
  }
}

/** simcsepp eval --model DIR --sts FILE... [--json] */
export async function evalCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...encoderFlags, sts: { type: 'string', multiple: true }, json: { type: 'boolean', default: false } },
  })
  if (!values.model) throw new UsageError('eval: --model DIR is required')
  const files = [...(values.sts ?? []), ...positionals]
  if (!files.length) throw new UsageError('eval: give at least one --sts FILE (STS-B, SICK, or an STS12-16 folder)')
  const enc = await SentenceEncoder.load(values.model, encoderOptions(values))
  try {
    const result = await evaluateStsFiles((s) => enc.encode(s), files)
    if (values.json) {
      const out = { results: result.results.map((r) => ({ file: r.file, pairs: r.pairs, spearman: r.spearman })), average: result.average }
      process.stdout.write(JSON.stringify(out, null, 2) + '\n')
    } else process.stdout.write(stsTable(result) + '\n')
  } finally {
    await enc.close()
  }
}
