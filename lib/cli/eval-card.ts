// `simcsepp eval --update-card`: what an evaluation writes into the model's card (lib/train/model-index-update.ts),
// the published numbers of a model (a test split's) beside those its training recorded. A set is named by its file's or
// folder's name, and a Hub dataset's (hf://datasets/ORG/NAME/PATH) by its id, which model-index takes as the dataset's
// type; a task folder's split is the split scored. Of a retrieval set ranked several ways (--binary), the exact
// search's scores are the model's.
import { isFolder } from '../eval/table.js'
import { hubDatasetOf, setLabel } from '../hub/hub-model.js'
import { retrievalEval } from '../train/evaluation.js'
import { finiteResults, modelIndexResults, type Result, type ResultNaming } from '../train/model-index.js'
import type { StsFilesResult } from '../eval/sts.js'
import type { RetrievalResult } from '../eval/retrieval.js'
import type { TranslationResult } from '../eval/translation.js'
import type { MseResult } from '../eval/mse.js'
import type { ClassificationResult } from '../eval/classification.js'
import type { ClusteringResult } from '../eval/clustering.js'
import type { PairClassificationResult } from '../eval/pair-classification.js'
import type { RerankingResult } from '../eval/reranking.js'
import type { SummarizationResult } from '../eval/summarization.js'
import type { InSubset } from './task-tables.js'

/** One evaluation's results, as `simcsepp eval` computes them. */
export interface EvalCommandResults {
  sts: StsFilesResult | null
  retrieval: RetrievalResult[]
  translation: InSubset<TranslationResult>[]
  classification: InSubset<ClassificationResult>[]
  clustering: InSubset<ClusteringResult>[]
  pairClassification: InSubset<PairClassificationResult>[]
  reranking: InSubset<RerankingResult>[]
  summarization: InSubset<SummarizationResult>[]
  /** --mse: each file's distance from the teacher's vectors (none without). */
  mse?: MseResult[]
}

/** `r` with each result's path (an STS result's file, ...; a multilingual dataset's folder) as `path` gives it. */
export function withSetPaths(r: EvalCommandResults, path: (p: string) => string): EvalCommandResults {
  const datasets = <R extends { dataset: string }>(xs: R[]) => xs.map((x) => ({ ...x, dataset: path(x.dataset) }))
  return {
    sts: r.sts && { ...r.sts, results: r.sts.results.map((x) => ({ ...x, file: path(x.file) })) },
    retrieval: datasets(r.retrieval),
    translation: r.translation.map((x) => ({ ...x, file: path(x.file) })),
    classification: datasets(r.classification),
    clustering: datasets(r.clustering),
    pairClassification: datasets(r.pairClassification),
    reranking: datasets(r.reranking),
    summarization: datasets(r.summarization),
    ...(r.mse ? { mse: r.mse.map((x) => ({ ...x, file: path(x.file) })) } : {}),
  }
}

/**
 * How the sets given as `refs` are named in the card: where a ref is a Hub dataset's path, the local path it was
 * resolved to (`resolved`, in the same order) is named by the dataset's name and the path in it, typed by its id;
 * paths `given` names already keep those names (the STS benchmark's tasks).
 */
export function hubSources(
  refs: string[],
  resolved: string[],
  given = new Map<string, { name: string; type: string; split?: string }>(),
): NonNullable<ResultNaming['source']> {
  const named = new Map(given) // (the caller's map is left as it is)
  for (const [i, ref] of refs.entries()) {
    const hub = hubDatasetOf(ref)
    if (hub && !named.has(resolved[i])) named.set(resolved[i], { name: setLabel(ref), type: hub.id })
  }
  return (path) => named.get(path)
}

/** The model-index results of an evaluation, with `split` the split its task folders were scored on. */
export function evalCardResults(r: EvalCommandResults, split: string, naming: ResultNaming): Result[] {
  const inFolder = <R extends { dataset: string }>(x: R) => ({ ...x, ...(isFolder(x.dataset) ? { split } : {}) })
  return finiteResults(
    modelIndexResults(
      {
        results: r.sts?.results ?? [],
        retrieval: r.retrieval.filter((x) => x.search === 'exact').map(retrievalEval),
        translation: r.translation.map((x) => ({ ...x, ...(isFolder(x.file) ? { split } : {}) })),
        classification: r.classification.map(inFolder),
        clustering: r.clustering.map(inFolder),
        pairClassification: r.pairClassification.map(inFolder),
        reranking: r.reranking.map(inFolder),
        summarization: r.summarization.map(inFolder),
        mse: (r.mse ?? []).map((x) => ({ ...x, ...(isFolder(x.file) ? { split } : {}) })),
      },
      naming,
    ),
  )
}

/** What was written, said on stderr. */
export function cardUpdateLine(u: { path: string; written: number; replaced: number; kept: number; created: boolean }): string {
  const of = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`
  return (
    `simcsepp: ${u.created ? 'made' : 'updated'} ${u.path}: model-index ${of(u.written, 'result')} from this evaluation` +
    (u.replaced ? ` (${u.replaced} in place of earlier ones)` : '') +
    (u.kept ? `, ${of(u.kept, 'earlier result')} kept` : '') +
    '\n'
  )
}
