// STS evaluation (docs/method.md §7): cosine similarity of the two sentences' embeddings against gold scores,
// Spearman ×100. Reads the three formats the benchmarks ship in: STS-B, SICK and STS12–16, and the Parquet files
// of their Hugging Face datasets (sentence-transformers/stsb, mteb/stsbenchmark-sts, mteb/sickr-sts).
import { existsSync, promises as fsp } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { readTextLines } from '../data/text-lines.js'
import { isParquetFile, parquetColumns, valueKind, type ParquetColumns } from '../data/parquet.js'
import { readTable } from './table.js'
import { PairFile } from '../data/pairs.js'
import { cosineSimilarity } from '../util/vectors.js'

export interface StsPair {
  s1: string
  s2: string
  score: number
}

export interface ReadStsOptions {
  /**
   * SICK only: the full SICK.txt has a SemEval_set column (TRAIN/TRIAL/TEST); keep only this set
   * (e.g. 'TEST'). Ignored when the file has no such column (SentEval's SICK_test_annotated.txt).
   */
  sickSet?: string
}

/**
 * Reads an STS file, detecting its format:
 * - a directory: STS12–16, every `<prefix>.input.<subset>.txt` paired with `<prefix>.gs.<subset>.txt`
 *   (prefix `STS`, or `STS2016` as SentEval ships STS16), subsets concatenated in sorted order;
 * - a `*.input.<subset>.txt` file: that one STS12–16 subset, its gs file beside it;
 * - a file whose first line is a header with sentence_A, sentence_B and relatedness_score: SICK;
 * - a Parquet file (by extension or magic bytes) or a gzipped JSON Lines, CSV or TSV file (`.gz`: MTEB's copies on
 *   the Hub, mteb/sts12-sts/test.jsonl.gz) with columns sentence1, sentence2, score (or SICK's sentence_A,
 *   sentence_B, relatedness_score): a Hugging Face dataset's split (any score scale: Spearman is rank-based);
 * - otherwise STS-B: tab-separated genre, file, year, id, score, sentence1, sentence2 (extra columns ignored).
 * Pairs whose gold score is missing (an empty gs line) are skipped; any other malformed line is an error
 * naming file:line. Lines are decoded as every text file is (readTextLines: strict UTF-8, \n or \r\n).
 */
export async function readStsFile(path: string, options: ReadStsOptions = {}): Promise<StsPair[]> {
  let stat
  try {
    stat = await fsp.stat(path)
  } catch {
    throw new Error(`${path}: no such file or directory`)
  }
  if (stat.isDirectory()) return readStsDirectory(path)
  const m = INPUT_RE.exec(basename(path))
  if (m) return readStsSubset(join(dirname(path), `${m[1]}.input.${m[2]}.txt`), join(dirname(path), `${m[1]}.gs.${m[2]}.txt`))
  if (await isParquetFile(path)) return readStsColumns(path, await parquetColumns(path))
  if (path.toLowerCase().endsWith('.gz')) {
    // Gzipped JSON Lines (or CSV, TSV): MTEB's STS datasets on the Hub (mteb/sts12-sts/test.jsonl.gz, ...).
    const table = await readTable(path)
    return readStsColumns(path, { names: table.names, rows: table.rows, read: async (names) => names.map((n) => table.column(n)) })
  }
  const lines = await readTextLines(path)
  const header = lines[0]?.split('\t') ?? []
  if (header.includes('sentence_A') && header.includes('sentence_B') && header.includes('relatedness_score'))
    return parseSick(path, lines, header, options.sickSet)
  const scored = scoredPairsFormat(lines[0] ?? '')
  if (scored) return readScoredPairs(path, scored)
  return parseStsb(path, lines)
}

const INPUT_RE = /^(STS\d*)\.input\.(.+)\.txt$/

/**
 * The format of a file of scored pairs as training reads them (a header, or JSON objects, naming sentence1, sentence2
 * and score: sentence-transformers/stsb's columns), or null: the STS-B distribution's own files (sts-dev.csv) are
 * tab-separated without a header, and stay STS-B.
 */
function scoredPairsFormat(first: string): 'csv' | 'tsv' | 'jsonl' | null {
  const line = first.replace(/^\ufeff/, '').trim()
  const named = (names: string[]) => names.includes('sentence1') && names.includes('sentence2') && names.includes('score')
  if (line.startsWith('{')) {
    try {
      return named(Object.keys(JSON.parse(line) as object)) ? 'jsonl' : null
    } catch {
      return null
    }
  }
  for (const [format, sep] of [
    ['tsv', '\t'],
    ['csv', ','],
  ] as const)
    if (named(line.split(sep).map((s) => s.trim().replace(/^"(.*)"$/, '$1')))) return format
  return null
}

/** Scored pairs read as a training file of them is (test/cosent-training's data makes a dev set too). */
async function readScoredPairs(path: string, format: 'csv' | 'tsv' | 'jsonl'): Promise<StsPair[]> {
  const file = await PairFile.open(path, format, { scores: true })
  const [s1, s2] = await file.readColumns(Array.from({ length: file.count }, (_, i) => i))
  return s1.map((s, i) => ({ s1: s, s2: s2[i], score: file.scores![i] }))
}

/** The column names of an STS split in Parquet: the datasets' (sentence1, sentence2, score), then SICK's. */
const STS_COLUMNS = [
  ['sentence1', 'sentence2', 'score'],
  ['sentence_A', 'sentence_B', 'relatedness_score'],
]

/** An STS split read as named columns (Parquet, gzipped JSON Lines); rows without a score are skipped, as an empty gs line is. */
async function readStsColumns(path: string, table: Pick<ParquetColumns, 'names' | 'rows' | 'read'>): Promise<StsPair[]> {
  const names = STS_COLUMNS.find((set) => set.every((n) => table.names.includes(n)))
  if (!names)
    throw new Error(
      `${path}: an STS table needs the columns ${STS_COLUMNS.map((set) => set.join(', ')).join(' or ')} (found ${table.names.join(', ') || 'none'})`,
    )
  const [s1, s2, score] = await table.read(names)
  const pairs: StsPair[] = []
  for (let r = 0; r < table.rows; r++) {
    const gold = score[r]
    if (gold === null || gold === undefined) continue
    for (const [c, v] of [
      [0, s1[r]],
      [1, s2[r]],
    ] as const)
      if (typeof v !== 'string') throw new Error(`${path}: row ${r + 1}: column ${names[c]} holds ${valueKind(v)}, not text`)
    const value = Number(gold)
    if (!Number.isFinite(value)) throw new Error(`${path}: row ${r + 1}: the score ${String(gold)} is not a finite number`)
    pairs.push({ s1: s1[r] as string, s2: s2[r] as string, score: value })
  }
  if (pairs.length === 0) throw new Error(`${path}: no sentence pairs`)
  return pairs
}

/** The subsets of an STS12–16 folder in sorted order; null for any other path (a single file). */
export async function readStsSubsets(path: string): Promise<{ subset: string; pairs: StsPair[] }[] | null> {
  if (!(await fsp.stat(path).catch(() => null))?.isDirectory()) return null
  const names = (await fsp.readdir(path)).filter((n) => INPUT_RE.test(n)).sort()
  if (names.length === 0) throw new Error(`${path}: no STS.input.<subset>.txt files in this directory`)
  const subsets = []
  for (const name of names) {
    const [, prefix, subset] = INPUT_RE.exec(name)!
    subsets.push({ subset, pairs: await readStsSubset(join(path, name), join(path, `${prefix}.gs.${subset}.txt`)) })
  }
  return subsets
}

/** An STS12–16 folder as one list of pairs: the subsets concatenated (the "all" setting). */
async function readStsDirectory(dir: string): Promise<StsPair[]> {
  return (await readStsSubsets(dir))!.flatMap((s) => s.pairs)
}

async function readStsSubset(inputPath: string, gsPath: string): Promise<StsPair[]> {
  const read = async (p: string) => {
    if (!existsSync(p)) throw new Error(`${p}: cannot read (STS12–16 needs both the input and the gs file)`)
    return readTextLines(p)
  }
  const inputs = await read(inputPath)
  const gold = await read(gsPath)
  if (inputs.length !== gold.length) throw new Error(`${inputPath}: ${inputs.length} lines but ${basename(gsPath)} has ${gold.length}`)
  const pairs: StsPair[] = []
  for (let i = 0; i < inputs.length; i++) {
    if (gold[i].trim() === '') continue // unscored pair
    const score = parseScore(gold[i], gsPath, i + 1)
    const cols = inputs[i].split('\t')
    if (cols.length < 2) throw new Error(`${inputPath}:${i + 1}: expected sentence1<TAB>sentence2, got ${cols.length} column`)
    pairs.push({ s1: cols[0], s2: cols[1], score })
  }
  return pairs
}

function parseStsb(path: string, lines: string[]): StsPair[] {
  const pairs: StsPair[] = []
  lines.forEach((line, i) => {
    if (line.trim() === '') return
    const cols = line.split('\t')
    if (cols.length < 7)
      throw new Error(
        `${path}:${i + 1}: expected 7 tab-separated columns (STS-B: genre, file, year, id, score, s1, s2), got ${cols.length}`,
      )
    pairs.push({ s1: cols[5], s2: cols[6], score: parseScore(cols[4], path, i + 1) })
  })
  if (pairs.length === 0) throw new Error(`${path}: no sentence pairs`)
  return pairs
}

function parseSick(path: string, lines: string[], header: string[], set?: string): StsPair[] {
  const a = header.indexOf('sentence_A')
  const b = header.indexOf('sentence_B')
  const s = header.indexOf('relatedness_score')
  const setCol = header.indexOf('SemEval_set')
  const need = Math.max(a, b, s) + 1
  const pairs: StsPair[] = []
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].trim() === '') continue
    const cols = lines[i].split('\t')
    if (cols.length < need) throw new Error(`${path}:${i + 1}: expected at least ${need} tab-separated columns, got ${cols.length}`)
    if (set !== undefined && setCol >= 0 && cols[setCol] !== set) continue
    pairs.push({ s1: cols[a], s2: cols[b], score: parseScore(cols[s], path, i + 1) })
  }
  if (pairs.length === 0) throw new Error(`${path}: no sentence pairs${set ? ` in set ${set}` : ''}`)
  return pairs
}

function parseScore(text: string, path: string, line: number): number {
  const t = text.trim()
  const v = Number(t)
  if (t === '' || !Number.isFinite(v)) throw new Error(`${path}:${line}: invalid score ${JSON.stringify(text)}`)
  return v
}

// ---- correlation ----

/** Pearson correlation (×1). NaN when either side is constant. */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = checkLengths(a, b)
  let ma = 0,
    mb = 0
  for (let i = 0; i < n; i++) {
    ma += a[i]
    mb += b[i]
  }
  ma /= n
  mb /= n
  let sab = 0,
    saa = 0,
    sbb = 0
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma,
      db = b[i] - mb
    sab += da * db
    saa += da * da
    sbb += db * db
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb)
}

/** Spearman rank correlation (×1): Pearson of the ranks, tied values sharing their average rank (as scipy). */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  checkLengths(a, b)
  return pearson(ranks(a), ranks(b))
}

/** 1-based ranks with ties averaged. */
export function ranks(x: ArrayLike<number>): Float64Array {
  const n = x.length
  const idx = Array.from({ length: n }, (_, i) => i).sort((i, j) => x[i] - x[j])
  const r = new Float64Array(n)
  for (let i = 0; i < n;) {
    let j = i + 1
    while (j < n && x[idx[j]] === x[idx[i]]) j++
    const avg = (i + 1 + j) / 2 // mean of ranks i+1..j
    for (let k = i; k < j; k++) r[idx[k]] = avg
    i = j
  }
  return r
}

function checkLengths(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`correlation of arrays of different lengths (${a.length} and ${b.length})`)
  if (a.length < 2) throw new RangeError(`correlation needs at least 2 values, got ${a.length}`)
  for (const v of [a, b])
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new RangeError(`non-finite value ${v[i]} at ${i}`)
  return a.length
}

// ---- evaluation ----

/** Embeds sentences: one vector per sentence, in order. */
export type EmbedFn = (sentences: string[]) => Promise<Float32Array[]>

export interface StsEvalOptions {
  /** Sentences per embed call (default 128). */
  batchSize?: number
}

export interface StsResult {
  pairs: number
  /** Spearman ×100. */
  spearman: number
  /** Pearson ×100 (reported by some papers; not used for selection). */
  pearson: number
}

/**
 * Spearman ×100 between the cosine similarity of each pair's embeddings and the gold scores.
 * Each distinct sentence is embedded once (STS files repeat many), in batches of similar length so
 * little compute goes to padding.
 */
export async function evaluateSts(embed: EmbedFn, pairs: StsPair[], options: StsEvalOptions = {}): Promise<StsResult> {
  const batchSize = options.batchSize ?? 128
  if (pairs.length < 2) throw new Error(`STS evaluation needs at least 2 pairs, got ${pairs.length}`)
  const unique = [...new Set(pairs.flatMap((p) => [p.s1, p.s2]))].sort((x, y) => x.length - y.length)
  const vectors = new Map<string, Float32Array>()
  for (let i = 0; i < unique.length; i += batchSize) {
    const chunk = unique.slice(i, i + batchSize)
    const out = await embed(chunk)
    if (out.length !== chunk.length) throw new Error(`embed returned ${out.length} vectors for ${chunk.length} sentences`)
    chunk.forEach((s, k) => vectors.set(s, out[k]))
  }
  const sims = pairs.map((p) => cosineSimilarity(vectors.get(p.s1)!, vectors.get(p.s2)!))
  const gold = pairs.map((p) => p.score)
  return { pairs: pairs.length, spearman: 100 * spearman(sims, gold), pearson: 100 * pearson(sims, gold) }
}

export interface StsFileResult extends StsResult {
  file: string
  /**
   * An STS12–16 folder: its score is the "all" setting of SimCSE's paper (one correlation over the
   * subsets' pairs concatenated); `subsets` holds each subset's own, and `mean` their unweighted mean
   * (SentEval's default "mean" setting, which papers before SimCSE reported).
   */
  setting?: 'all'
  subsets?: ({ subset: string } & StsResult)[]
  mean?: { spearman: number; pearson: number }
}

export interface StsFilesResult {
  results: StsFileResult[]
  /** Mean Spearman ×100 over the files (the "Avg." column of the paper). */
  average: number
  /** Mean Pearson ×100 over the files. */
  averagePearson: number
}

export async function evaluateStsFiles(
  embed: EmbedFn,
  files: string[],
  options: StsEvalOptions & ReadStsOptions = {},
): Promise<StsFilesResult> {
  if (files.length === 0) throw new Error('evaluateStsFiles: no files given')
  // A folder is scored whole and per subset: each sentence is embedded once for both.
  const seen = new Map<string, Float32Array>()
  const cached: EmbedFn = async (sentences) => {
    const todo = sentences.filter((s) => !seen.has(s))
    const out = todo.length ? await embed(todo) : []
    if (out.length !== todo.length) throw new Error(`embed returned ${out.length} vectors for ${todo.length} sentences`)
    todo.forEach((s, k) => seen.set(s, out[k]))
    return sentences.map((s) => seen.get(s)!)
  }
  const results: StsFilesResult['results'] = []
  for (const file of files) {
    const result: StsFileResult = { file, ...(await evaluateSts(cached, await readStsFile(file, options), options)) }
    const subsets = await readStsSubsets(file)
    if (subsets) {
      result.setting = 'all'
      result.subsets = []
      for (const s of subsets) result.subsets.push({ subset: s.subset, ...(await evaluateSts(cached, s.pairs, options)) })
      const mean = (k: 'spearman' | 'pearson') => result.subsets!.reduce((a, r) => a + r[k], 0) / result.subsets!.length
      result.mean = { spearman: mean('spearman'), pearson: mean('pearson') }
    }
    results.push(result)
  }
  const avg = (k: 'spearman' | 'pearson') => results.reduce((s, r) => s + r[k], 0) / results.length
  return { results, average: avg('spearman'), averagePearson: avg('pearson') }
}
