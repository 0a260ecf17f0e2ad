// `simcsepp encode`: a thin layer over SentenceEncoder; its encoder flags and loader, which `simcsepp eval` shares.
import { openSentences } from '../data/text-source.js'
import { SentenceEncoder } from '../embed/sentence-encoder.js'
import { DEVICE_REQUESTS } from '../device.js'
import { ENCODER_PRECISION_REQUESTS } from '../model/precision.js'
import { num, oneOf, parseFlags, UsageError } from './args.js'
import { encodeUsage } from './help.js'
import { ENCODE_FORMATS, encodeLine, encodeProgressBar } from './encode-output.js'
import { resolveDataFlag, resolveModelFlag } from './hub-download.js'
import { quantizationRanges, quantizeEmbeddings, type QuantizationRanges } from '../embed/quantize.js'
import { POOLINGS } from '../model/pooling.js'
import { SIMILARITY_FNS } from '../embed/similarity-fn.js'

export const encoderFlags = {
  model: { type: 'string' },
  device: { type: 'string' },
  precision: { type: 'string' },
  pooling: { type: 'string' },
  normalize: { type: 'boolean' },
  'max-len': { type: 'string' },
  'batch-size': { type: 'string' },
  'truncate-dim': { type: 'string' },
  'similarity-fn': { type: 'string' },
} as const

/** The encoder the flags ask for; a --max-len beyond the model's positions is noted on stderr (it is clamped). */
export async function loadEncoder(v: Record<string, string | boolean | string[] | undefined>): Promise<SentenceEncoder> {
  const maxLength = num('max-len', v['max-len'] as string | undefined, { int: true, min: 3 })
  const enc = await SentenceEncoder.load(await resolveModelFlag(v.model as string), {
    device: oneOf('device', v.device as string | undefined, DEVICE_REQUESTS),
    precision: oneOf('precision', v.precision as string | undefined, ENCODER_PRECISION_REQUESTS),
    pooling: oneOf('pooling', v.pooling as string | undefined, POOLINGS),
    normalize: v.normalize as boolean | undefined,
    maxLength,
    batchSize: num('batch-size', v['batch-size'] as string | undefined, { int: true, min: 1 }),
    truncateDim: num('truncate-dim', v['truncate-dim'] as string | undefined, { int: true, min: 1 }),
    similarityFn: oneOf('similarity-fn', v['similarity-fn'] as string | undefined, SIMILARITY_FNS),
  })
  if (enc.precisionNote) process.stderr.write(`simcsepp: ${enc.precisionNote}\n`)
  if (maxLength !== undefined && enc.maxLength < maxLength)
    process.stderr.write(`simcsepp: --max-len ${maxLength} is more than the model's ${enc.maxLength} positions: using ${enc.maxLength}\n`)
  return enc
}

/** simcsepp encode --model DIR [--file FILE] [sentences...] [--format json|jsonl|tsv|f32|bytes] [--quantize P] */
export async function encodeCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(encodeUsage, {
    args: argv,
    allowPositionals: true,
    options: {
      ...encoderFlags,
      file: { type: 'string' },
      column: { type: 'string' },
      format: { type: 'string', default: 'json' },
      prompt: { type: 'string' },
      'prompt-name': { type: 'string' },
      quantize: { type: 'string' },
      calibration: { type: 'string' },
    },
  })
  values.file = await resolveDataFlag(values.file) // (an hf://datasets/... path: downloaded into the cache)
  if (!values.model) throw new UsageError('encode: --model DIR is required')
  const format = oneOf('format', values.format, ENCODE_FORMATS)!
  if (!values.file && positionals.length === 0) throw new UsageError('encode: give sentences as arguments or --file FILE (one per line)')
  const quantize = oneOf('quantize', values.quantize, ['int8', 'uint8', 'binary', 'ubinary'] as const)
  if (format === 'f32' && quantize)
    throw new UsageError('encode: --format f32 writes floats; quantized vectors are written raw by --format bytes')
  if (format === 'bytes' && !quantize)
    throw new UsageError('encode: --format bytes writes quantized vectors: give --quantize (or --format f32 for floats)')
  // int8 and uint8 need one set of buckets for every vector (and for the queries encoded later): a calibration file's.
  if ((quantize === 'int8' || quantize === 'uint8') && !values.calibration)
    throw new UsageError(`encode: --quantize ${quantize} needs --calibration FILE (sentences whose vectors' ranges set the buckets)`)
  if (values.calibration && quantize !== 'int8' && quantize !== 'uint8')
    throw new UsageError('encode: --calibration applies to --quantize int8 and uint8')
  if ((format === 'f32' || format === 'bytes') && process.stdout.isTTY)
    throw new UsageError(`encode --format ${format} writes binary: redirect stdout to a file`)
  // Read as train reads its data (same UTF-8 and line-ending errors), and checked before any output.
  // A blank line is an error: encode writes one vector per input line, so outputs line up with inputs.
  // A Parquet file: one of its columns, each row a sentence (a Hugging Face dataset's text); JSON Lines: a field.
  if (values.column !== undefined && !values.file) throw new UsageError('encode: --column names a column of a Parquet or JSONL --file')
  const file = values.file ? await openSentences(values.file, values.column, 'error') : null
  if (values.prompt !== undefined && values['prompt-name'] !== undefined)
    throw new UsageError('encode: give --prompt or --prompt-name, not both')
  const enc = await loadEncoder(values)
  const prompt = { prompt: values.prompt, promptName: values['prompt-name'] }
  let ranges: QuantizationRanges | undefined
  try {
    enc.promptFor(prompt) // an unknown --prompt-name fails before any output
    if (values.calibration) {
      // The calibration sentences as the model encodes the input (the same prompt), read as --file is.
      const cal = await openSentences(values.calibration, undefined, 'skip')
      try {
        const lines = Array.from({ length: cal.count }, (_, i) => i)
        if (!lines.length) throw new UsageError(`encode: --calibration ${values.calibration} has no sentences`)
        ranges = quantizationRanges(await enc.encode(await cal.readLines(lines), prompt))
      } finally {
        await cal.close()
      }
    }
  } catch (e) {
    await enc.close()
    throw e
  }
  const write = (data: string | Uint8Array) =>
    new Promise<void>((resolve, reject) => process.stdout.write(data, (e) => (e ? reject(e) : resolve())))
  // On a terminal, a long file gets a progress bar on stderr (the vectors go to stdout).
  const bar = file ? encodeProgressBar(file.count) : null
  const emit = async (sentences: string[], before = 0) => {
    const floats = await enc.encode(sentences, { ...prompt, ...(bar ? { onProgress: ({ done }) => bar.update(before + done) } : {}) })
    const vectors = quantize ? quantizeEmbeddings(floats, quantize, ranges ? { ranges } : {}) : floats
    if (format === 'f32' || format === 'bytes') for (const v of vectors) await write(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
    else await write(vectors.map((v, i) => encodeLine(format, sentences[i], v)).join('\n') + '\n')
  }
  try {
    if (positionals.length) await emit(positionals)
    // In chunks of 4096 lines, so the file's text is never all in memory.
    for (let s = 0; file && s < file.count; s += 4096) {
      const indices = Array.from({ length: Math.min(4096, file.count - s) }, (_, i) => s + i)
      await emit(await file.readLines(indices), s)
    }
    bar?.finish()
  } finally {
    await file?.close()
    await enc.close()
  }
}
