// Summarization (MTEB's summarization task, SummEval): each text comes with human-written summaries and machine
// summaries that people scored (relevance); a model scores each machine summary by its largest similarity to the
// text's human summaries, and the task measures how well those scores follow the people's: per text the Spearman
// and Pearson correlation of the two, then their means over the texts (MTEB's SummarizationEvaluator: cosine and dot
// product; a text whose human scores, cosine scores or dot scores are all equal is skipped, as there). The main
// score is the cosine Spearman. Files: one text per row, lists machine_summaries, human_summaries and relevance.
import type { Embed } from '../embed/memo-embed.js'
import { embedInBatches } from '../embed/embed-texts.js'
import { cosineSimilarity, dot } from '../util/vectors.js'
import { pearson, spearman } from './sts.js'
import { fileOfSplit, readTable, textCell, type Table } from './table.js'

export interface SummarizationText {
  human: string[]
  machine: string[]
  /** The people's score of each machine summary. */
  relevance: number[]
}

export interface SummarizationSet {
  name: string
  texts: SummarizationText[]
}

export interface SummarizationResult {
  dataset: string
  texts: number
  /** Texts correlated (the others' scores were all equal on one side). */
  scored: number
  /** Means over the scored texts (×1). cosineSpearman is the main score. */
  cosineSpearman: number
  cosinePearson: number
  dotSpearman: number
  dotPearson: number
}

const COLUMNS = ['machine_summaries', 'human_summaries', 'relevance']

/** A summarization set: a file, or a folder's `split` (default 'test'). */
export async function readSummarizationSet(path: string, split = 'test'): Promise<SummarizationSet> {
  const file = fileOfSplit(path, split)
  const table = await readTable(file)
  if (table.rows === 0) throw new Error(`${file}: no rows`)
  for (const c of COLUMNS)
    if (!table.names.includes(c)) throw new Error(`${file}: no ${c} column (the columns are ${table.names.join(', ') || 'none'})`)
  const [machine, human, relevance] = COLUMNS.map((c) => table.column(c))
  const texts = machine.map((m, i) => {
    const t = {
      machine: summaryList(table, m, i, 'machine_summaries'),
      human: summaryList(table, human[i], i, 'human_summaries'),
      relevance: scores(table, relevance[i], i),
    }
    if (t.human.length === 0) throw new Error(`${file}: ${table.where(i)}: no human_summaries`)
    if (t.relevance.length !== t.machine.length)
      throw new Error(`${file}: ${table.where(i)}: ${t.machine.length} machine_summaries but ${t.relevance.length} relevance scores`)
    return t
  })
  return { name: path, texts }
}

function summaryList(table: Table, v: unknown, i: number, column: string): string[] {
  if (!Array.isArray(v)) throw new Error(`${table.path}: ${table.where(i)}: ${column} must be a list of texts`)
  return v.map((x) => textCell(table, x, i, column))
}

function scores(table: Table, v: unknown, i: number): number[] {
  const list = Array.isArray(v) ? v.map((x) => (typeof x === 'bigint' ? Number(x) : x)) : null
  if (!list || !list.every((x) => typeof x === 'number' && Number.isFinite(x)))
    throw new Error(`${table.path}: ${table.where(i)}: relevance must be a list of numbers`)
  return list as number[]
}

/** Embeds every summary once (human ones, then machine ones), then correlates each text's scores. */
export async function evaluateSummarization(
  embed: Embed,
  set: SummarizationSet,
  options: { onProgress?: (p: { done: number; total: number }) => void } = {},
): Promise<SummarizationResult> {
  const human = set.texts.flatMap((t) => t.human)
  const machine = set.texts.flatMap((t) => t.machine)
  const progress = { total: human.length + machine.length, done: 0, onProgress: options.onProgress }
  const [hv, mv] = [await embedInBatches(embed, human, progress), await embedInBatches(embed, machine, progress)]
  const sums = { cosineSpearman: 0, cosinePearson: 0, dotSpearman: 0, dotPearson: 0 }
  let [h0, m0, scored] = [0, 0, 0]
  for (const t of set.texts) {
    const refs = hv.slice(h0, h0 + t.human.length)
    const cosine = mv.slice(m0, m0 + t.machine.length).map((v) => Math.max(...refs.map((r) => cosineSimilarity(v, r))))
    const dots = mv.slice(m0, m0 + t.machine.length).map((v) => Math.max(...refs.map((r) => dot(v, r))))
    ;[h0, m0] = [h0 + t.human.length, m0 + t.machine.length]
    if ([t.relevance, cosine, dots].some((x) => new Set(x).size <= 1)) continue
    sums.cosineSpearman += spearman(t.relevance, cosine)
    sums.cosinePearson += pearson(t.relevance, cosine)
    sums.dotSpearman += spearman(t.relevance, dots)
    sums.dotPearson += pearson(t.relevance, dots)
    scored++
  }
  const mean = (x: number) => (scored ? x / scored : NaN)
  return {
    dataset: set.name,
    texts: set.texts.length,
    scored,
    cosineSpearman: mean(sums.cosineSpearman),
    cosinePearson: mean(sums.cosinePearson),
    dotSpearman: mean(sums.dotSpearman),
    dotPearson: mean(sums.dotPearson),
  }
}
