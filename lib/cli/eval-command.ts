// `simcsepp eval`: a model's scores (SentenceEncoder, or an ONNX export through onnxruntime) on STS, retrieval,
// translation and MTEB's classification, clustering, pair classification and reranking, as tables or JSON; with
// --matryoshka-dims, of its vectors cut to each size.
import { SentenceEncoder } from '../embed/sentence-encoder.js'
import { OnnxEncoder } from '../embed/onnx-encoder.js'
import { evaluateStsFiles, type StsFilesResult } from '../eval/sts.js'
import { readBeirDataset, type RetrievalDataset } from '../eval/beir.js'
import { evaluateRetrieval, type RetrievalResult } from '../eval/retrieval.js'
import { evaluateTranslation, readTranslationPairs, type TranslationResult } from '../eval/translation.js'
import { evaluateClassification, readClassificationSet, type ClassificationResult } from '../eval/classification.js'
import { subsetsOf } from '../eval/table.js'
import { evaluateMse, readMseSentences, type MseResult, type MseSentences } from '../eval/mse.js'
import { evaluateClustering, readClusteringDataset, type ClusteringResult } from '../eval/clustering.js'
import { evaluatePairClassification, readPairClassificationSet, type PairClassificationResult } from '../eval/pair-classification.js'
import { evaluateReranking, readRerankingSet, type RerankingResult } from '../eval/reranking.js'
import { evaluateSummarization, readSummarizationSet, type SummarizationResult } from '../eval/summarization.js'
import { memoEmbed, type Embed, type MemoEmbed } from '../embed/memo-embed.js'
import { num, numList, parseFlags, UsageError } from './args.js'
import { resolveDataFlags } from './hub-download.js'
import { evalUsage } from './help.js'
import { matryoshkaTable, mseTable, retrievalTable, stsTable, translationTable } from './tables.js'
import {
  classificationTable,
  clusteringTable,
  pairClassificationTable,
  rerankingTable,
  subsetMeansTable,
  summarizationTable,
  taskMainScores,
  type InSubset,
} from './task-tables.js'
import { encodeProgressBar } from './encode-output.js'
import { encoderFlags, loadEncoder } from './encode-command.js'
import { DEFAULT_RESCORE } from '../embed/binary-index.js'
import { STS_BENCHMARK, STS_BENCHMARK_SPLIT, stsBenchmarkRef } from '../eval/sts-benchmark.js'
import { isHubModelId } from '../hub/hub-model.js'
import { checkModelCard, updateModelIndex } from '../train/model-index-update.js'
import type { Result } from '../train/model-index.js'
import type { TaskType } from '../train/task-evaluation.js'
import { cardUpdateLine, evalCardResults, hubSources, withSetPaths } from './eval-card.js'
import { mainScoreMeans, mainScoresByType, meansColumns, meansTable } from './mean-scores.js'
import { searchSimilarity } from '../embed/similarity-fn.js'

/** simcsepp eval --model DIR [--sts FILE...] [--retrieval DIR...] [--json] */
export async function evalCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(evalUsage, {
    args: argv,
    allowPositionals: true,
    options: {
      ...encoderFlags,
      onnx: { type: 'string' },
      sts: { type: 'string', multiple: true },
      retrieval: { type: 'string', multiple: true },
      translation: { type: 'string', multiple: true },
      classification: { type: 'string', multiple: true },
      clustering: { type: 'string', multiple: true },
      'pair-classification': { type: 'string', multiple: true },
      reranking: { type: 'string', multiple: true },
      summarization: { type: 'string', multiple: true },
      mse: { type: 'string', multiple: true },
      teacher: { type: 'string' },
      'samples-per-label': { type: 'string' },
      experiments: { type: 'string' },
      split: { type: 'string', default: 'test' },
      'query-prefix': { type: 'string' },
      'doc-prefix': { type: 'string' },
      json: { type: 'boolean', default: false },
      'matryoshka-dims': { type: 'string' },
      binary: { type: 'boolean', default: false },
      rescore: { type: 'string' },
      'update-card': { type: 'boolean', default: false },
      'sts-benchmark': { type: 'boolean', default: false },
    },
  })
  // (hf://datasets/... paths: the dataset's files, downloaded into the Hugging Face cache where missing)
  // (each hf:// path kept beside its local path: the card names a Hub dataset's results by its id)
  const [refs, local]: string[][] = [[], []]
  const resolve = async (given: string[] | undefined) => {
    const paths = await resolveDataFlags(given)
    refs.push(...(given ?? []))
    local.push(...(paths ?? []))
    return paths
  }
  values.sts = await resolve(values.sts)
  values.retrieval = await resolve(values.retrieval)
  values.translation = await resolve(values.translation)
  values.mse = await resolve(values.mse)
  for (const flag of ['classification', 'clustering', 'pair-classification', 'reranking', 'summarization'] as const)
    values[flag] = await resolve(values[flag])
  positionals.splice(0, positionals.length, ...(await resolve(positionals))!)
  if (values.model && values.onnx) throw new UsageError('eval: give --model DIR or --onnx FILE, not both')
  if (!values.model && !values.onnx) throw new UsageError('eval: --model DIR (or --onnx FILE) is required')
  // --sts-benchmark: the seven English STS test sets (lib/eval/sts-benchmark.ts), each shown and carded by its task.
  const benchmark = new Map<string, { name: string; type: string; split: string }>()
  if (values['sts-benchmark']) {
    const paths = (await resolve(STS_BENCHMARK.map((b) => stsBenchmarkRef(b.id))))!
    for (const [i, b] of STS_BENCHMARK.entries()) benchmark.set(paths[i], { name: b.task, type: b.id, split: STS_BENCHMARK_SPLIT })
  }
  const files = [...(values.sts ?? []), ...positionals, ...benchmark.keys()]
  const folders = values.retrieval ?? []
  const taskFlags = ['translation', 'classification', 'clustering', 'pair-classification', 'reranking', 'summarization', 'mse'] as const
  if (!files.length && !folders.length && !taskFlags.some((flag) => values[flag]?.length))
    throw new UsageError(
      'eval: give at least one --sts FILE (STS-B, SICK, a Parquet split, or an STS12-16 folder), --sts-benchmark, --retrieval DIR (a BEIR ' +
        'folder), --translation FILE (parallel pairs), --classification, --clustering, --pair-classification, --reranking ' +
        'or --summarization (or --mse with --teacher)',
    )
  // Every dataset is read (and its format checked) before the model loads.
  const datasets: RetrievalDataset[] = []
  for (const dir of folders) datasets.push(await readBeirDataset(dir, values.split))
  // A task's sets: each path's, or each subset's of a multilingual dataset (a folder per language), whose results
  // then name the dataset and the subset.
  const readSets = async <S>(paths: string[] | undefined, read: (path: string, split: string) => Promise<S>) => {
    const sets: { set: S; subset?: { dataset: string; subset: string } }[] = []
    for (const path of paths ?? []) {
      const subsets = subsetsOf(path, values.split)
      if (!subsets) sets.push({ set: await read(path, values.split) })
      else for (const s of subsets) sets.push({ set: await read(s.path, values.split), subset: { dataset: path, subset: s.name } })
    }
    return sets
  }
  const parallel = await readSets(values.translation, readTranslationPairs)
  const classification = await readSets(values.classification, readClassificationSet)
  const clustering = await readSets(values.clustering, readClusteringDataset)
  const pairSets = await readSets(values['pair-classification'], readPairClassificationSet)
  const reranking = await readSets(values.reranking, readRerankingSet)
  const summarization = await readSets(values.summarization, readSummarizationSet)
  const mseSets: MseSentences[] = []
  for (const path of values.mse ?? []) mseSets.push(await readMseSentences(path, values.split))
  if (mseSets.length && !values.teacher) throw new UsageError('eval: --mse measures the model against a teacher: give --teacher DIR')
  if (values.teacher && !mseSets.length) throw new UsageError('eval: --teacher applies to --mse (the sentences to measure on)')
  if (mseSets.length && values['matryoshka-dims'])
    throw new UsageError("eval: --mse compares whole vectors with the teacher's: give --matryoshka-dims or --mse, not both")
  const samplesPerLabel = num('samples-per-label', values['samples-per-label'], { int: true, min: 0 })
  const experiments = num('experiments', values.experiments, { int: true, min: 1 })
  if ((samplesPerLabel !== undefined || experiments !== undefined) && !classification.length)
    throw new UsageError('eval: --samples-per-label and --experiments apply to --classification')
  const rescore = num('rescore', values.rescore, { int: true, min: 0 })
  if (rescore !== undefined && !values.binary) throw new UsageError('eval: --rescore applies to --binary')
  if (values.binary && !folders.length) throw new UsageError('eval: --binary ranks the documents of --retrieval sets: give one')
  // Exact search, then the documents' signs by Hamming distance alone, rescored by the signs (--rescore, default 4), and
  // rescored by the documents' vectors (a binary index whose full vectors are kept in storage).
  const m = rescore ?? DEFAULT_RESCORE
  const searches = values.binary ? [undefined, { rescore: 0 }, { rescore: m }, { rescore: m, byVectors: true }] : [undefined]
  const dims = numList('matryoshka-dims', values['matryoshka-dims'], { int: true, min: 1 })
  if (dims && values['truncate-dim'] !== undefined) throw new UsageError('eval: give --truncate-dim or --matryoshka-dims, not both')
  const card = values['update-card'] ? values.model : undefined
  if (values['update-card']) {
    if (!card) throw new UsageError("eval: --update-card writes into the model folder's README.md: give --model DIR, not --onnx")
    if (isHubModelId(card))
      throw new UsageError(`eval: --update-card writes into a model folder of yours: ${card} names a Hub model (its cached copy is not)`)
    // (the card records the model's scores: not those of another pooling)
    for (const flag of ['pooling', 'normalize'] as const)
      if (values[flag] !== undefined) throw new UsageError(`eval: --update-card records the model as it is: drop --${flag}`)
    await checkModelCard(card) // (before the evaluation: a card that cannot be updated is said at once)
  }
  // The card's results: the sets' names, and a size's (vectors cut to fewer values than the model gives) in each name.
  const cardResults: Result[] = []
  const naming = { source: hubSources(refs, local, benchmark) }
  const addToCard = (r: Parameters<typeof evalCardResults>[0], dim: number | undefined, full: number) =>
    cardResults.push(...evalCardResults(r, values.split, { ...naming, ...(dim && dim < full ? { suffix: ` (${dim} dims)` } : {}) }))
  // The teacher's vectors of each --mse file's sources, before the model loads (the two are not held at once).
  const teacherRows = values.teacher ? await teacherVectors(values.teacher, mseSets, values) : []
  const enc = values.onnx ? await loadOnnxEncoder(values.onnx, values) : await loadEncoder(values)
  try {
    // Prefixes: the flags, else those of the model's encodeQuery and encodeDocument (its 'query' and 'document',
    // 'passage' or 'corpus' prompts); the texts are then embedded with no further prompt.
    // (Only with datasets: a model whose pooling refuses prompts still evaluates STS.)
    const ranked = folders.length > 0 || reranking.length > 0
    const role = (r: 'query' | 'document') => (ranked && enc instanceof SentenceEncoder ? enc.rolePrefix(r) : '')
    const queryPrefix = values['query-prefix'] ?? role('query')
    const docPrefix = values['doc-prefix'] ?? role('document')
    if (ranked && (values['query-prefix'] === undefined || values['doc-prefix'] === undefined) && (queryPrefix || docPrefix))
      process.stderr.write(
        `simcsepp: the model's prompts: queries prefixed ${JSON.stringify(queryPrefix)}, documents ${JSON.stringify(docPrefix)}\n`,
      )
    // The model's similarity function (MTEB's retrieval and reranking score by model.similarity); an ONNX export's: cosine.
    const modelSimilarity = enc instanceof SentenceEncoder ? enc.similarityFn : 'cosine'
    const sentences: Embed = (s) => enc.encode(s)
    const plain: Embed = (s) => (enc instanceof SentenceEncoder ? enc.encode(s, { prompt: '' }) : enc.encode(s))
    // Every measure once, with these encoders (progress bars while the retrieval sets are encoded).
    // MTEB's symmetric tasks: the model's prompt named after the task's type, where its prompts hold one (MTEB looks them
    // up by those names: STS, BitextMining, Classification, Clustering, PairClassification, Summarization), else its
    // default prompt.
    const typePrompt = (type: TaskType) => (enc instanceof SentenceEncoder && Object.hasOwn(enc.prompts, type) ? type : undefined)
    const prompted =
      (type: TaskType): Embed =>
      (s) =>
        (enc as SentenceEncoder).encode(s, { promptName: type })
    const forType = (type: TaskType, embed: Embed) => (typePrompt(type) ? prompted(type) : embed)
    const evaluate = async (
      embed: Embed,
      embedPlain: Embed,
      bars: boolean,
      typed: (type: TaskType) => Embed = (t) => forType(t, embed),
    ) => {
      const sts: StsFilesResult | null = files.length ? await evaluateStsFiles(typed('STS'), files) : null
      const retrieval: RetrievalResult[] = []
      for (const data of datasets) {
        const bar = bars ? encodeProgressBar(data.corpus.length + data.queries.length, process.stderr, 'texts') : null
        // With --binary the texts are encoded once for the three rankings.
        const embedOnce = searches.length > 1 ? memoEmbed(embedPlain).full : embedPlain
        for (const [i, binary] of searches.entries())
          retrieval.push(
            await evaluateRetrieval(embedOnce, data, {
              queryPrefix,
              documentPrefix: docPrefix,
              onProgress: bar && i === 0 ? ({ done }) => bar.update(done) : undefined,
              ...(binary ? { binary } : {}),
              // A dot-product model's documents ranked by the dot product, as MTEB ranks them.
              similarityFn: searchSimilarity(modelSimilarity),
            }),
          )
        bar?.finish()
      }
      // Translation pairs: both sides alike, with the BitextMining prompt, else the default prompt (as MTEB); a subset's
      // named by its dataset's folder and the subset.
      const translation: InSubset<TranslationResult>[] = []
      for (const { set, subset } of parallel)
        translation.push({
          ...(await evaluateTranslation(typed('BitextMining'), set)),
          ...(subset ? { file: subset.dataset, subset: subset.subset } : {}),
        })
      // MTEB's other task kinds: texts with their type's prompt (above), reranking's queries and candidates with the prefixes.
      const tasks: TaskResults = { classification: [], clustering: [], pairClassification: [], reranking: [], summarization: [] }
      // A progress bar per task (made once its total is known: 1,000 texts or more, on a terminal).
      type OnProgress = (p: { done: number; total: number }) => void
      const withBar = async <R>(run: (onProgress?: OnProgress) => Promise<R>) => {
        let bar: ReturnType<typeof encodeProgressBar> | undefined
        const update: OnProgress = ({ done, total }) => (bar ??= encodeProgressBar(total, process.stderr, 'texts'))?.update(done)
        const result = await run(bars ? update : undefined)
        bar?.finish()
        return result
      }
      for (const { set, subset } of classification)
        tasks.classification.push({
          ...(await withBar((onProgress) =>
            evaluateClassification(typed('Classification'), set, { samplesPerLabel, experiments, onProgress }),
          )),
          ...subset,
        })
      for (const { set, subset } of clustering)
        tasks.clustering.push({
          ...(await withBar((onProgress) => evaluateClustering(typed('Clustering'), set, { onProgress }))),
          ...subset,
        })
      for (const { set, subset } of pairSets)
        tasks.pairClassification.push({
          ...(await withBar((onProgress) => evaluatePairClassification(typed('PairClassification'), set, { onProgress }))),
          ...subset,
        })
      for (const { set, subset } of reranking)
        tasks.reranking.push({
          ...(await withBar((onProgress) =>
            evaluateReranking(embedPlain, set, { queryPrefix, documentPrefix: docPrefix, onProgress, similarityFn: modelSimilarity }),
          )),
          ...subset,
        })
      for (const { set, subset } of summarization)
        tasks.summarization.push({
          ...(await withBar((onProgress) => evaluateSummarization(typed('Summarization'), set, { onProgress }))),
          ...subset,
        })
      // Distillation (sentence-transformers' MSEEvaluator): the model's vectors of the targets against the teacher's.
      const mse: MseResult[] = []
      for (const [i, set] of mseSets.entries()) {
        try {
          mse.push(await evaluateMse(embed, teacherRows[i], set))
        } catch (e) {
          const message = (e as Error).message
          if (!message.includes('must be as wide')) throw e
          // (a student of a wider teacher learnt its vectors' principal components, which eval does not have)
          throw new Error(`${message}: a student distilled from a wider teacher is measured during training (train --eval-mse)`)
        }
      }
      return { sts, retrieval, translation, ...tasks, ...(mseSets.length ? { mse } : {}) }
    }
    // Sets read from the Hub shown by their hf:// paths in the tables and the JSON, not by their copies in the Hub's
    // cache (a snapshot folder is named by its commit); the STS benchmark's files by their tasks' names.
    const hubRefs = new Map(refs.flatMap((ref, i) => (ref.startsWith('hf://') ? [[local[i], ref] as const] : [])))
    const shown = (r: Awaited<ReturnType<typeof evaluate>>) =>
      withSetPaths(r, (path) => benchmark.get(path)?.name ?? hubRefs.get(path) ?? path)
    // MTEB's means of the main scores, where two datasets or more were scored.
    const meansOf = (r: Awaited<ReturnType<typeof evaluate>>) => mainScoreMeans(mainScoresByType(r))
    const jsonOf = (r: Awaited<ReturnType<typeof evaluate>>) => {
      const { sts, retrieval, translation, ...tasks } = r
      const mean = meansOf(r)
      const stsOut = sts && {
        ...sts,
        results: sts.results.map(({ file, pairs, spearman, ...added }) => ({ file, pairs, spearman, ...added })),
      }
      const present = Object.fromEntries(Object.entries(tasks).filter(([, r]) => r.length))
      return {
        ...stsOut,
        ...(folders.length ? { retrieval } : {}),
        ...(parallel.length ? { translation } : {}),
        ...present,
        ...(mean ? { mean } : {}),
      }
    }
    if (dims) {
      // A Matryoshka model at each size: the texts encoded once, their vectors cut to each.
      const [memo, memoPlain] = [memoEmbed(sentences), memoEmbed(plain)]
      const typeMemos = new Map<TaskType, MemoEmbed>()
      const typedMemo = (type: TaskType) => {
        if (!typePrompt(type)) return memo
        if (!typeMemos.has(type)) typeMemos.set(type, memoEmbed(prompted(type)))
        return typeMemos.get(type)!
      }
      const sizes = []
      for (const [k, dim] of dims.entries()) {
        const r = await evaluate(memo.cut(dim), memoPlain.cut(dim), k === 0, (type) => typedMemo(type).cut(dim))
        if (card) addToCard(r, dim, (enc as SentenceEncoder).dimension)
        sizes.push({ dim, ...shown(r) })
      }
      if (values.json)
        process.stdout.write(JSON.stringify({ matryoshka: sizes.map((r) => ({ dim: r.dim, ...jsonOf(r) })) }, null, 2) + '\n')
      else
        process.stdout.write(
          matryoshkaTable(sizes.map((r) => ({ ...r, tasks: [...taskMainScores(r), ...meansColumns(meansOf(r))] }))) + '\n',
        )
      warnUnknown(sizes[0].retrieval)
      if (card) await writeCard(card, cardResults)
      return
    }
    const evaluated = await evaluate(sentences, plain, true)
    if (card) addToCard(evaluated, num('truncate-dim', values['truncate-dim'], { int: true, min: 1 }), (enc as SentenceEncoder).dimension)
    const result = shown(evaluated)
    if (values.json) process.stdout.write(JSON.stringify(jsonOf(result), null, 2) + '\n')
    else {
      const tables = [
        ...(result.sts ? [stsTable(result.sts)] : []),
        ...(result.retrieval.length ? [retrievalTable(result.retrieval)] : []),
        ...(result.translation.length ? [translationTable(result.translation)] : []),
        ...(result.classification.length ? [classificationTable(result.classification)] : []),
        ...(result.clustering.length ? [clusteringTable(result.clustering)] : []),
        ...(result.pairClassification.length ? [pairClassificationTable(result.pairClassification)] : []),
        ...(result.reranking.length ? [rerankingTable(result.reranking)] : []),
        ...(result.summarization.length ? [summarizationTable(result.summarization)] : []),
        ...(result.mse?.length ? [mseTable(result.mse)] : []),
        ...[subsetMeansTable(result) ?? []].flat(),
        ...[meansOf(result) ?? []].flat().map(meansTable),
      ]
      process.stdout.write(tables.join('\n\n') + '\n')
      warnUnknown(result.retrieval)
    }
    if (card) await writeCard(card, cardResults)
  } finally {
    await enc.close()
  }
}

/** --update-card: the results into the model folder's card, and what was written said on stderr. */
async function writeCard(dir: string, results: Result[]): Promise<void> {
  if (!results.length) {
    process.stderr.write(`simcsepp: no score to write into ${dir}'s card (every measure was NaN): not changed\n`)
    return
  }
  process.stderr.write(cardUpdateLine(await updateModelIndex(dir, results)))
}

interface TaskResults {
  classification: InSubset<ClassificationResult>[]
  clustering: InSubset<ClusteringResult>[]
  pairClassification: InSubset<PairClassificationResult>[]
  reranking: InSubset<RerankingResult>[]
  summarization: InSubset<SummarizationResult>[]
}

/**
 * --teacher's vectors of each --mse set's sources ([N, D] row-major each), encoded as SentenceEncoder encodes (its
 * pooling, Normalize module and default prompt), on the device and at the precision the flags ask for.
 */
async function teacherVectors(
  teacher: string,
  sets: MseSentences[],
  v: Record<string, string | boolean | string[] | undefined>,
): Promise<Float32Array[]> {
  const enc = await loadEncoder({ model: teacher, device: v.device, precision: v.precision, 'batch-size': v['batch-size'] })
  try {
    const out: Float32Array[] = []
    for (const set of sets) {
      const rows = (await enc.encode(set.source)) as Float32Array[]
      const d = rows[0]?.length ?? 0
      const flat = new Float32Array(rows.length * d)
      rows.forEach((r, i) => flat.set(r, i * d))
      out.push(flat)
    }
    return out
  } finally {
    await enc.close()
  }
}

/** Judged documents a retrieval set's corpus lacks, said on stderr. */
function warnUnknown(retrieval: RetrievalResult[]): void {
  for (const r of retrieval)
    if (r.unknownDocuments > 0)
      process.stderr.write(
        `simcsepp: ${r.dataset}: ${r.unknownDocuments} judged documents are not in corpus.jsonl (counted relevant, never retrieved)\n`,
      )
}

/** `eval --onnx FILE`: the export's graph fixes the device, precision and pooling, so those flags are refused. */
async function loadOnnxEncoder(file: string, v: Record<string, string | boolean | string[] | undefined>): Promise<OnnxEncoder> {
  for (const flag of ['device', 'precision', 'pooling', 'normalize', 'truncate-dim'])
    if (v[flag] !== undefined)
      throw new UsageError(`eval: --${flag} does not apply to --onnx (onnxruntime's CPU provider runs the graph as exported)`)
  const maxLength = num('max-len', v['max-len'] as string | undefined, { int: true, min: 3 })
  return OnnxEncoder.load(file, { maxLength, batchSize: num('batch-size', v['batch-size'] as string | undefined, { int: true, min: 1 }) })
}
