// `simcsepp reduce`: a thin layer over reduceDimensions (lib/embed/reduce-dimensions.ts), with the sentences the
// components are fitted to read from a file: up to --sentences of them, evenly spread over it.
import { basename, resolve } from 'node:path'
import { reduceDimensions } from '../embed/reduce-dimensions.js'
import { openSentences } from '../data/text-source.js'
import { DEVICE_REQUESTS } from '../device.js'
import { isHubModelId } from '../hub/hub-model.js'
import { num, oneOf, parseFlags, UsageError } from './args.js'
import { resolveDataFlag, resolveModelFlag } from './hub-download.js'
import { reduceUsage } from './help.js'

/** sentence-transformers' dimensionality_reduction example fits its components to 20,000 sentences. */
const SENTENCES = 20000

/** simcsepp reduce --model DIR --dim N --data FILE [--out DIR] [options] */
export async function reduceCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(reduceUsage, {
    args: argv,
    options: {
      model: { type: 'string' },
      dim: { type: 'string' },
      data: { type: 'string' },
      column: { type: 'string' },
      sentences: { type: 'string' },
      out: { type: 'string' },
      overwrite: { type: 'boolean', default: false },
      device: { type: 'string' },
      'batch-size': { type: 'string' },
    },
  })
  if (!values.model) throw new UsageError('reduce: --model DIR is required')
  const dim = num('dim', values.dim, { int: true, min: 1 })
  if (dim === undefined) throw new UsageError("reduce: --dim N (the vectors' new length) is required")
  if (!values.data) throw new UsageError('reduce: --data FILE (sentences to fit the components to) is required')
  const count = num('sentences', values.sentences, { int: true, min: 1 }) ?? SENTENCES
  const hub = isHubModelId(values.model)
  const out = values.out ?? (hub ? `${basename(values.model.split('@')[0])}-${dim}d` : `${resolve(values.model)}-${dim}d`)
  const file = await openSentences((await resolveDataFlag(values.data))!, values.column, 'skip')
  let sentences: string[]
  try {
    const m = Math.min(file.count, count)
    sentences = await file.readLines(Array.from({ length: m }, (_, i) => Math.floor((i * file.count) / m)))
  } finally {
    await file.close()
  }
  const r = await reduceDimensions(await resolveModelFlag(values.model), out, {
    dim,
    sentences,
    overwrite: values.overwrite,
    source: basename(values.data),
    encoder: {
      device: oneOf('device', values.device, DEVICE_REQUESTS),
      batchSize: num('batch-size', values['batch-size'], { int: true, min: 1 }),
    },
  })
  process.stdout.write(
    `wrote ${r.out}: the model with a Dense module ${r.from} -> ${r.to} (${r.dense}${r.normalized ? ', before its Normalize' : ''}), ` +
      `its first ${r.to} principal components over ${r.sentences} sentences of ${values.data}, ` +
      `${(100 * r.explained).toFixed(1)}% of their variance\n`,
  )
}
