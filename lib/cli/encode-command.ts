// `simcsepp encode` and `simcsepp eval`: thin layers over SentenceEncoder and the STS evaluation.
import { SentenceFile } from '../data/sentences.js'
import { SentenceEncoder } from '../embed/sentence-encoder.js'
import { OnnxEncoder } from '../embed/onnx-encoder.js'
import { evaluateStsFiles } from '../eval/sts.js'
import { DEVICE_REQUESTS } from '../device.js'
import { ENCODER_PRECISION_REQUESTS } from '../model/precision.js'
import { num, oneOf, parseFlags, UsageError } from './args.js'
import { encodeUsage, evalUsage } from './help.js'
import { stsTable } from './tables.js'
import { ENCODE_FORMATS, encodeLine, encodeProgressBar } from './encode-output.js'

export const encoderFlags = {
  model: { type: 'string' },
  device: { type: 'string' },
  precision: { type: 'string' },
  pooling: { type: 'string' },
  normalize: { type: 'boolean' },
  'max-len': { type: 'string' },
  'batch-size': { type: 'string' },
} as const

/** The encoder the flags ask for; a --max-len beyond the model's positions is noted on stderr (it is clamped). */
export async function loadEncoder(v: Record<string, string | boolean | string[] | undefined>): Promise<SentenceEncoder> {
  const maxLength = num('max-len', v['max-len'] as string | undefined, { int: true, min: 3 })
  const enc = await SentenceEncoder.load(v.model as string, {
    device: oneOf('device', v.device as string | undefined, DEVICE_REQUESTS),
    precision: oneOf('precision', v.precision as string | undefined, ENCODER_PRECISION_REQUESTS),
    pooling: oneOf('pooling', v.pooling as string | undefined, ['cls', 'mean'] as const),
    normalize: v.normalize as boolean | undefined,
    maxLength,
    batchSize: num('batch-size', v['batch-size'] as string | undefined, { int: true, min: 1 }),
  })
  if (enc.precisionNote) process.stderr.write(`simcsepp: ${enc.precisionNote}\n`)
  if (maxLength !== undefined && enc.maxLength < maxLength)
    process.stderr.write(`simcsepp: --max-len ${maxLength} is more than the model's ${enc.maxLength} positions: using ${enc.maxLength}\n`)
  return enc
}

/** simcsepp encode --model DIR [--file FILE] [sentences...] [--format json|jsonl|tsv|f32] */
export async function encodeCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(encodeUsage, {
    args: argv,
    allowPositionals: true,
    options: { ...encoderFlags, file: { type: 'string' }, format: { type: 'string', default: 'json' } },
  })
  if (!values.model) throw new UsageError('encode: --model DIR is required')
  const format = oneOf('format', values.format, ENCODE_FORMATS)!
  if (!values.file && positionals.length === 0) throw new UsageError('encode: give sentences as arguments or --file FILE (one per line)')
  if (format === 'f32' && process.stdout.isTTY) throw new UsageError('encode --format f32 writes binary: redirect stdout to a file')
  // Read as train reads its data (same UTF-8 and line-ending errors), and checked before any output.
  // A blank line is an error: encode writes one vector per input line, so outputs line up with inputs.
  const file = values.file ? await SentenceFile.open(values.file, { blankLines: 'error' }) : null
  const enc = await loadEncoder(values)
  const write = (data: string | Uint8Array) =>
    new Promise<void>((resolve, reject) => process.stdout.write(data, (e) => (e ? reject(e) : resolve())))
  // On a terminal, a long file gets a progress bar on stderr (the vectors go to stdout).
  const bar = file ? encodeProgressBar(file.count) : null
  const emit = async (sentences: string[], before = 0) => {
    const vectors = await enc.encode(sentences, bar ? { onProgress: ({ done }) => bar.update(before + done) } : {})
    if (format === 'f32') for (const v of vectors) await write(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
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

/** simcsepp eval --model DIR --sts FILE... [--json] */
export async function evalCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(evalUsage, {
    args: argv,
    allowPositionals: true,
    options: {
      ...encoderFlags,
      onnx: { type: 'string' },
      sts: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    },
  })
  if (values.model && values.onnx) throw new UsageError('eval: give --model DIR or --onnx FILE, not both')
  if (!values.model && !values.onnx) throw new UsageError('eval: --model DIR (or --onnx FILE) is required')
  const files = [...(values.sts ?? []), ...positionals]
  if (!files.length) throw new UsageError('eval: give at least one --sts FILE (STS-B, SICK, or an STS12-16 folder)')
  const enc = values.onnx ? await loadOnnxEncoder(values.onnx, values) : await loadEncoder(values)
  try {
    const result = await evaluateStsFiles((s) => enc.encode(s), files)
    if (values.json) {
      const out = { ...result, results: result.results.map(({ file, pairs, spearman, ...added }) => ({ file, pairs, spearman, ...added })) }
      process.stdout.write(JSON.stringify(out, null, 2) + '\n')
    } else process.stdout.write(stsTable(result) + '\n')
  } finally {
    await enc.close()
  }
}

/** `eval --onnx FILE`: the export's graph fixes the device, precision and pooling, so those flags are refused. */
async function loadOnnxEncoder(file: string, v: Record<string, string | boolean | string[] | undefined>): Promise<OnnxEncoder> {
  for (const flag of ['device', 'precision', 'pooling', 'normalize'])
    if (v[flag] !== undefined)
      throw new UsageError(`eval: --${flag} does not apply to --onnx (onnxruntime's CPU provider runs the graph as exported)`)
  const maxLength = num('max-len', v['max-len'] as string | undefined, { int: true, min: 3 })
  return OnnxEncoder.load(file, { maxLength, batchSize: num('batch-size', v['batch-size'] as string | undefined, { int: true, min: 1 }) })
}
