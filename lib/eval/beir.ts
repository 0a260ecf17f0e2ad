// A retrieval benchmark in BEIR's folder layout (the format of BEIR's downloads and of MTEB's retrieval
// tasks): corpus.jsonl ({"_id", "title", "text"} per line), queries.jsonl ({"_id", "text"}) and
// qrels/<split>.tsv (query-id, corpus-id, score; a header line is allowed). As BEIR's GenericDataLoader
// reads it: a document's text is its title and text joined by a space (either may be absent or empty),
// ids are strings (numbers are taken as their decimal text), and the queries evaluated are those the split's
// qrels judge.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { readTextLines } from '../data/text-lines.js'

export interface RetrievalDocument {
  id: string
  text: string
}

export interface RetrievalDataset {
  /** The folder it was read from. */
  dir: string
  split: string
  corpus: RetrievalDocument[]
  /** The queries the split judges, in queries.jsonl's order. */
  queries: RetrievalDocument[]
  /** query id -> (document id -> graded relevance, an integer >= 0; >= 1 counts as relevant). */
  qrels: Map<string, Map<string, number>>
  /** Judged document ids that corpus.jsonl does not hold (they count as relevant but are never retrieved). */
  unknownDocuments: number
}

function fail(file: string, line: number, message: string): never {
  throw new Error(`${file}:${line}: ${message}`)
}

/** An id field: a non-empty string, or a number taken as its decimal text. */
function idOf(v: unknown, file: string, line: number, field: string): string {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  if (typeof v === 'string' && v !== '') return v
  return fail(file, line, `"${field}" must be a non-empty string or a number, got ${JSON.stringify(v)}`)
}

/** The records of a JSONL file ({"_id", "text", "title"?}), ids unique; `withTitle` joins title and text. */
async function readRecords(file: string, withTitle: boolean): Promise<RetrievalDocument[]> {
  const lines = await readTextLines(file)
  const out: RetrievalDocument[] = []
  const seen = new Set<string>()
  lines.forEach((raw, i) => {
    const line = raw.trim()
    if (line === '') return
    let v: unknown
    try {
      v = JSON.parse(line)
    } catch (e) {
      fail(file, i + 1, `not a JSON object (${(e as Error).message})`)
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(file, i + 1, 'not a JSON object')
    const r = v as Record<string, unknown>
    const id = idOf(r._id, file, i + 1, '_id')
    if (seen.has(id)) fail(file, i + 1, `_id ${JSON.stringify(id)} appears twice`)
    seen.add(id)
    const part = (field: string) => {
      const x = r[field]
      if (x === undefined || x === null) return ''
      if (typeof x !== 'string') fail(file, i + 1, `"${field}" must be a string, got ${JSON.stringify(x)}`)
      return x
    }
    const text = part('text')
    out.push({ id, text: withTitle ? `${part('title')} ${text}`.trim() : text })
  })
  return out
}

/** qrels/<split>.tsv: query id, document id, integer score >= 0, tab-separated; a first line naming the columns is skipped. */
async function readQrels(file: string): Promise<Map<string, Map<string, number>>> {
  const lines = await readTextLines(file)
  const qrels = new Map<string, Map<string, number>>()
  lines.forEach((line, i) => {
    if (line.trim() === '') return
    const cols = line.split('\t')
    if (i === 0 && cols.length >= 3 && Number.isNaN(Number(cols[2].trim()))) return // the header (query-id, corpus-id, score)
    if (cols.length < 3) fail(file, i + 1, `expected query-id, corpus-id and score separated by tabs, got ${JSON.stringify(line)}`)
    const [q, d, s] = cols.map((c) => c.trim())
    if (q === '' || d === '') fail(file, i + 1, 'empty query or corpus id')
    if (!/^\d+$/.test(s)) fail(file, i + 1, `the score must be an integer >= 0, got ${JSON.stringify(s)}`)
    const judged = qrels.get(q) ?? new Map<string, number>()
    if (judged.has(d)) fail(file, i + 1, `query ${JSON.stringify(q)} judges document ${JSON.stringify(d)} twice`)
    judged.set(d, Number(s))
    qrels.set(q, judged)
  })
  return qrels
}

/** Reads a BEIR folder's corpus, queries and the qrels of `split` (default 'test'). */
export async function readBeirDataset(dir: string, split = 'test'): Promise<RetrievalDataset> {
  const need = (name: string) => {
    const file = join(dir, name)
    if (!existsSync(file)) throw new Error(`${dir}: no ${name} (a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv)`)
    return file
  }
  const corpusFile = need('corpus.jsonl'),
    queriesFile = need('queries.jsonl'),
    qrelsFile = need(join('qrels', `${split}.tsv`))
  const [corpus, allQueries, qrels] = await Promise.all([
    readRecords(corpusFile, true),
    readRecords(queriesFile, false),
    readQrels(qrelsFile),
  ])
  if (corpus.length === 0) throw new Error(`${corpusFile}: no documents`)
  if (qrels.size === 0) throw new Error(`${qrelsFile}: no judgements`)
  const queryIds = new Set(allQueries.map((q) => q.id))
  for (const q of qrels.keys()) if (!queryIds.has(q)) throw new Error(`${qrelsFile}: query ${JSON.stringify(q)} is not in queries.jsonl`)
  const docIds = new Set(corpus.map((d) => d.id))
  let unknownDocuments = 0
  for (const judged of qrels.values()) for (const d of judged.keys()) if (!docIds.has(d)) unknownDocuments++
  return { dir, split, corpus, queries: allQueries.filter((q) => qrels.has(q.id)), qrels, unknownDocuments }
}
