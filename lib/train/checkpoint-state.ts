// The shape of a checkpoint's state.json, checked field by field before a run resumes from it: a hand
// edit or a corrupted file must stop the resume with an error naming the file and the field, never
// resume "at step ten" or fail later with a TypeError.
import type { DataFingerprint } from '../data/sentences.js'
import { TOKENIZER_FILES, type TokenizerRecord } from './tokenizer-copy.js'
import { SELECTION_METRICS, type Best, type SelectionMetric } from './events.js'

export interface CheckpointState {
  /** Optimizer steps taken. */
  step: number
  /** Where the next batch starts (the data stream's position). */
  dataPosition: { epoch: number; index: number }
  seed: number
  best: Best
  /** The options the run was started with (resume checks the ones that must not change). */
  options: Record<string, unknown>
  /** Elapsed training seconds before this checkpoint. */
  elapsedSeconds: number
  /** The training data the run read (absent in checkpoints written before fingerprints existed). */
  data?: DataFingerprint
  /** The copy of the run's tokenizer beside state.json (absent in checkpoints written before copies existed). */
  tokenizer?: TokenizerRecord
  /**
   * A run of several datasets: each one's stream position and fingerprint, in the run's order (dataPosition is
   * then the schedule's: its epoch and step within it; `data` is absent).
   */
  datasets?: { position: { epoch: number; index: number }; data: DataFingerprint }[]
  /**
   * The sentence-transformers Dense modules trained with the encoder (absent: none, as in checkpoints written before
   * they were trained, when such a model trained an MLP head of the same size in their place).
   */
  denseModules?: number
}

function fail(file: string, field: string, expected: string, value: unknown): never {
  const shown = value === undefined ? 'nothing' : JSON.stringify(value)?.slice(0, 60)
  throw new Error(`${file}: field ${field} must be ${expected} (found ${shown})`)
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** The measure a best evaluation holds (older checkpoints: spearman or ndcgAt10). */
const selectionMetricOf = (b: object): SelectionMetric => SELECTION_METRICS.find((m) => m in b) ?? 'spearman'

/**
 * The validated best evaluation, its fields only. A score written as null is NaN (JSON has no NaN): an evaluation
 * whose correlation was undefined (every similarity equal) was the best because it was the only one so far.
 */
function bestOf(b: Record<string, number | null> | null): Best {
  if (b === null) return null
  const metric = selectionMetricOf(b)
  return { step: b.step!, [metric]: b[metric] ?? NaN } as NonNullable<Best>
}

/** Checks a parsed state.json; `file` names it in the errors. */
export function validateCheckpointState(value: unknown, file: string): CheckpointState {
  if (!isObject(value)) fail(file, '(the whole file)', 'a JSON object', value)
  const v = value
  if (!isCount(v.step)) fail(file, 'step', 'a non-negative integer', v.step)
  const pos = v.dataPosition
  if (!isObject(pos)) fail(file, 'dataPosition', 'an object { epoch, index }', pos)
  if (!isCount(pos.epoch)) fail(file, 'dataPosition.epoch', 'a non-negative integer', pos.epoch)
  if (!isCount(pos.index)) fail(file, 'dataPosition.index', 'a non-negative integer', pos.index)
  if (!isCount(v.seed)) fail(file, 'seed', 'a non-negative integer', v.seed)
  if (v.best !== null) {
    if (!isObject(v.best)) fail(file, 'best', `null or an object { step, and one of ${SELECTION_METRICS.join(', ')} }`, v.best)
    if (!isCount(v.best.step)) fail(file, 'best.step', 'a non-negative integer', v.best.step)
    const key = selectionMetricOf(v.best)
    const score = v.best[key]
    if (score !== null && (typeof score !== 'number' || !Number.isFinite(score)))
      fail(file, `best.${key}`, 'a finite number (or null: undefined)', score)
  }
  if (!isObject(v.options)) fail(file, 'options', 'an object (the options the run started with)', v.options)
  if (typeof v.elapsedSeconds !== 'number' || !(v.elapsedSeconds >= 0) || !Number.isFinite(v.elapsedSeconds)) {
    fail(file, 'elapsedSeconds', 'a non-negative number', v.elapsedSeconds)
  }
  if (v.denseModules !== undefined && !isCount(v.denseModules)) fail(file, 'denseModules', 'a non-negative integer', v.denseModules)
  const fingerprint = (d: unknown, field: string): DataFingerprint => {
    if (!isObject(d) || !isCount(d.bytes) || !isCount(d.lines) || typeof d.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(d.sha256)) {
      fail(file, field, 'an object { bytes, lines, sha256 }', d)
    }
    return { bytes: d.bytes as number, lines: d.lines as number, sha256: d.sha256 as string }
  }
  const data = v.data !== undefined ? fingerprint(v.data, 'data') : undefined
  let datasets: CheckpointState['datasets']
  if (v.datasets !== undefined) {
    if (!Array.isArray(v.datasets) || v.datasets.length < 2) fail(file, 'datasets', 'an array of 2 or more { position, data }', v.datasets)
    datasets = v.datasets.map((d: unknown, i) => {
      const at = `datasets[${i}]`
      if (!isObject(d) || !isObject(d.position)) fail(file, `${at}.position`, 'an object { epoch, index }', isObject(d) ? d.position : d)
      const p = d.position as Record<string, unknown>
      if (!isCount(p.epoch)) fail(file, `${at}.position.epoch`, 'a non-negative integer', p.epoch)
      if (!isCount(p.index)) fail(file, `${at}.position.index`, 'a non-negative integer', p.index)
      return { position: { epoch: p.epoch, index: p.index }, data: fingerprint(d.data, `${at}.data`) }
    })
  }
  let tokenizer: TokenizerRecord | undefined
  if (v.tokenizer !== undefined) {
    const k = v.tokenizer
    const files = isObject(k) && Array.isArray(k.files) ? k.files : []
    if (
      !isObject(k) ||
      typeof k.source !== 'string' ||
      !files.length ||
      !files.every((f) => TOKENIZER_FILES.includes(f)) ||
      typeof k.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(k.sha256)
    ) {
      fail(file, 'tokenizer', `an object { source, files (of ${TOKENIZER_FILES.join(', ')}), sha256 }`, k)
    }
    tokenizer = { source: k.source as string, files: files as string[], sha256: k.sha256 as string }
  }
  return {
    step: v.step,
    dataPosition: { epoch: pos.epoch, index: pos.index },
    seed: v.seed,
    best: bestOf(v.best as Record<string, number | null> | null),
    options: v.options,
    elapsedSeconds: v.elapsedSeconds,
    ...(v.denseModules !== undefined ? { denseModules: v.denseModules } : {}),
    ...(data ? { data } : {}),
    ...(tokenizer ? { tokenizer } : {}),
    ...(datasets ? { datasets } : {}),
  }
}
