// `simcsepp mine`: hard negatives for supervised training (lib/data/mine.ts), from a pairs file to a triplets
// (or n-tuples) file that `simcsepp train --data` reads.
import { existsSync } from 'node:fs'
import { extname } from 'node:path'
import { detectFormat, PairFile } from '../data/pairs.js'
import { SentenceFile } from '../data/sentences.js'
import { mineHardNegatives } from '../data/mine.js'
import { formatTriplets, formatTuples, tuplesOf, type TripletFormat } from '../data/write-triplets.js'
import { writeFileAtomic } from '../util/atomic-write.js'
import { num, oneOf, parseFlags, UsageError } from './args.js'
import { resolveDataFlag } from './hub-download.js'
import { encoderFlags, loadEncoder } from './encode-command.js'
import { encodeProgressBar } from './encode-output.js'
import { mineUsage } from './help.js'
import { searchSimilarity } from '../embed/similarity-fn.js'

const OUT_FORMATS: Record<string, TripletFormat> = { '.csv': 'csv', '.tsv': 'tsv', '.jsonl': 'jsonl' }

/** simcsepp mine --model DIR --data PAIRS --out TRIPLETS [options] */
export async function mineCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(mineUsage, {
    args: argv,
    options: {
      ...encoderFlags,
      data: { type: 'string' },
      out: { type: 'string' },
      overwrite: { type: 'boolean', default: false },
      corpus: { type: 'string' },
      'num-negatives': { type: 'string' },
      'range-min': { type: 'string' },
      'range-max': { type: 'string' },
      'max-score': { type: 'string' },
      margin: { type: 'string' },
      'relative-margin': { type: 'string' },
      sampling: { type: 'string' },
      seed: { type: 'string' },
      'output-format': { type: 'string' },
      'query-prefix': { type: 'string' },
      'doc-prefix': { type: 'string' },
    },
  })
  // (hf://datasets/... paths: the dataset's files, downloaded into the Hugging Face cache where missing)
  values.data = await resolveDataFlag(values.data)
  values.corpus = await resolveDataFlag(values.corpus)
  if (!values.model) throw new UsageError('mine: --model DIR is required')
  if (!values.data) throw new UsageError('mine: --data FILE (pairs: sent0,sent1 or anchor,positive) is required')
  if (!values.out) throw new UsageError('mine: --out FILE (.csv, .tsv or .jsonl) is required')
  const format = OUT_FORMATS[extname(values.out).toLowerCase()]
  if (!format) throw new UsageError(`mine: --out must end in .csv, .tsv or .jsonl, got ${JSON.stringify(values.out)}`)
  if (existsSync(values.out) && !values.overwrite) throw new UsageError(`mine: ${values.out} exists (pass --overwrite to replace it)`)
  const options = {
    numNegatives: num('num-negatives', values['num-negatives'], { int: true, min: 1 }),
    rangeMin: num('range-min', values['range-min'], { int: true, min: 0 }),
    rangeMax: num('range-max', values['range-max'], { int: true, min: 1 }),
    maxScore: num('max-score', values['max-score']),
    absoluteMargin: num('margin', values.margin),
    relativeMargin: num('relative-margin', values['relative-margin']),
    sampling: oneOf('sampling', values.sampling, ['top', 'random'] as const),
    seed: num('seed', values.seed, { int: true, min: 0 }),
  }
  const tuples = oneOf('output-format', values['output-format'], ['triplet', 'n-tuple'] as const) === 'n-tuple'
  // The inputs are read and checked before the model loads.
  const dataFormat = await detectFormat(values.data)
  if (dataFormat === 'text')
    throw new UsageError(`mine: ${values.data} is not a pairs file (a header sent0,sent1 or anchor,positive, or JSONL)`)
  const file = await PairFile.open(values.data, dataFormat)
  const all = Array.from({ length: file.count }, (_, i) => i)
  const [anchors, positives] = await file.readColumns(all)
  const pairs = anchors.map((anchor, i) => ({ anchor, positive: positives[i] }))
  let corpus: string[] | undefined
  if (values.corpus) {
    const sentences = await SentenceFile.open(values.corpus)
    try {
      corpus = (await sentences.readLines(Array.from({ length: sentences.count }, (_, i) => i))).filter((s) => s.trim() !== '')
    } finally {
      await sentences.close()
    }
  }
  const enc = await loadEncoder(values)
  try {
    // The bar is made at the first report, which carries the total.
    let bar: ReturnType<typeof encodeProgressBar> | undefined
    // Anchors with the model's query prompt, the corpus with its document prompt (as sentence-transformers'
    // encode_query and encode_document), unless the flags say otherwise; no further prompt on top.
    const r = await mineHardNegatives((s) => enc.encode(s, { prompt: '' }), pairs, {
      ...options,
      queryPrefix: values['query-prefix'] ?? enc.rolePrefix('query'),
      documentPrefix: values['doc-prefix'] ?? enc.rolePrefix('document'),
      corpus,
      device: enc.device,
      similarityFn: searchSimilarity(enc.similarityFn),
      onProgress: ({ done, total }) => {
        bar ??= encodeProgressBar(total, process.stderr, 'texts')
        bar?.update(done)
      },
    })
    bar?.finish()
    const mean = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(3))
    const scores = `; mean similarity to the anchor: positives ${mean(r.meanPositiveScore)}, negatives ${mean(r.meanNegativeScore)}\n`
    if (tuples) {
      const k = options.numNegatives ?? 3
      const t = tuplesOf(r.triplets, k)
      await writeFileAtomic(values.out, formatTuples(t.tuples, k, format))
      process.stderr.write(
        `simcsepp: ${pairs.length} pairs -> ${t.tuples.length} ${k + 2}-tuples in ${values.out}` +
          (t.dropped + r.pairsWithout ? ` (${t.dropped + r.pairsWithout} pairs had fewer than ${k} eligible negatives)` : '') +
          scores,
      )
    } else {
      await writeFileAtomic(values.out, formatTriplets(r.triplets, format))
      process.stderr.write(
        `simcsepp: ${pairs.length} pairs -> ${r.triplets.length} triplets in ${values.out}` +
          (r.pairsWithout ? ` (${r.pairsWithout} pairs had no eligible negative)` : '') +
          scores,
      )
    }
  } finally {
    await enc.close()
  }
}
