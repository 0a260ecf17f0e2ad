// Clustering (MTEB's clustering tasks): k-means over a model's vectors of a set of texts, with k the number of
// labels, scored by the V-measure of the clusters against the labels; a dataset's score is the mean over its sets.
// MTEB's files hold one set per row (sentences: a list of texts, labels: theirs), or one text per row (sentences or
// text, with labels or label): all the rows one set. k-means runs from a fixed seed (k-means++, 3 restarts, the
// lowest inertia kept), so a run repeats exactly; MTEB's mini-batch k-means is random, so its scores move by about a
// point from run to run where these do not.
import type { Embed } from '../embed/memo-embed.js'
import { embedInBatches } from '../embed/embed-texts.js'
import { kMeans, vMeasure } from './clustering-metrics.js'
import { columnName, fileOfSplit, labelCell, readTable, textCell, type Table } from './table.js'

export interface ClusteringSet {
  texts: string[]
  labels: string[]
}

export interface ClusteringDataset {
  name: string
  sets: ClusteringSet[]
}

export interface ClusteringResult {
  dataset: string
  sets: number
  texts: number
  /** Means over the sets. */
  vMeasure: number
  homogeneity: number
  completeness: number
}

const TEXTS = ['sentences', 'text', 'sentence']
const LABELS = ['labels', 'label']

/** A clustering dataset: a file, or a folder's `split` (default 'test'). */
export async function readClusteringDataset(path: string, split = 'test'): Promise<ClusteringDataset> {
  const file = fileOfSplit(path, split)
  const table = await readTable(file)
  if (table.rows === 0) throw new Error(`${file}: no rows`)
  const textName = columnName(table, TEXTS, 'texts')
  const labelName = columnName(table, LABELS, 'labels')
  const texts = table.column(textName)
  const labels = table.column(labelName)
  const sets: ClusteringSet[] = Array.isArray(texts[0])
    ? texts.map((t, i) => setOf(table, t, labels[i], i, textName, labelName))
    : [
        {
          texts: texts.map((t, i) => textCell(table, t, i, textName)),
          labels: labels.map((l, i) => labelCell(table, l, i, labelName)),
        },
      ]
  for (const [i, set] of sets.entries())
    if (new Set(set.labels).size < 2)
      throw new Error(`${file}: ${sets.length > 1 ? `${table.where(i)}: ` : ''}one label only: nothing to cluster`)
  return { name: path, sets }
}

/** One row's set: a list of texts and a list of as many labels. */
function setOf(table: Table, texts: unknown, labels: unknown, i: number, textName: string, labelName: string): ClusteringSet {
  if (!Array.isArray(texts) || !Array.isArray(labels))
    throw new Error(`${table.path}: ${table.where(i)}: ${textName} and ${labelName} must both be lists (the first row's are)`)
  if (texts.length !== labels.length)
    throw new Error(`${table.path}: ${table.where(i)}: ${texts.length} ${textName} but ${labels.length} ${labelName}`)
  return {
    texts: texts.map((t) => textCell(table, t, i, textName)),
    labels: labels.map((l) => labelCell(table, l, i, labelName)),
  }
}

/** Clusters each set's vectors into as many clusters as it has labels; the mean V-measure over the sets. */
export async function evaluateClustering(
  embed: Embed,
  data: ClusteringDataset,
  options: { seed?: number; onProgress?: (p: { done: number; total: number }) => void } = {},
): Promise<ClusteringResult> {
  let [v, h, c, texts] = [0, 0, 0, 0]
  const progress = { total: data.sets.reduce((n, s) => n + s.texts.length, 0), done: 0, onProgress: options.onProgress }
  for (const set of data.sets) {
    const vectors = await embedInBatches(embed, set.texts, progress)
    const names = [...new Set(set.labels)]
    const index = new Map(names.map((n, k) => [n, k]))
    const clusters = kMeans(vectors, names.length, { seed: options.seed ?? 0 })
    const m = vMeasure(
      set.labels.map((l) => index.get(l)!),
      clusters,
    )
    ;[v, h, c, texts] = [v + m.vMeasure, h + m.homogeneity, c + m.completeness, texts + set.texts.length]
  }
  const n = data.sets.length
  return { dataset: data.name, sets: n, texts, vMeasure: v / n, homogeneity: h / n, completeness: c / n }
}
