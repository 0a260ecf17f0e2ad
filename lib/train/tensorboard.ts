// TensorBoard's view of a run (train({ tensorboard: true }), `--tensorboard`): run/tensorboard/ holds one event file
// with the run's log as scalars, for `tensorboard --logdir out/run/tensorboard` (or several runs' parent folder).
//
// An event file is a sequence of TFRecords (length: uint64 LE, its masked CRC-32C, the bytes, their masked CRC-32C),
// each an Event protobuf (tensorflow/core/util/event.proto): wall_time (1, double), step (2, int64), and either
// file_version (3, "brain.Event:2", the first record) or summary (5: Summary, its values (1) each a tag (1) and a
// simple_value (2, float)). The file follows train.jsonl: a resumed run, whose log is cut back to its checkpoint, gets
// its file written anew from the log that was kept, so no step appears twice.
import { existsSync } from 'node:fs'
import { appendFile, mkdir, readdir, rm } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { ProtoWriter } from '../export/protobuf.js'
import { maskedCrc32c } from '../util/crc32c.js'
import { writeFileAtomic } from '../util/atomic-write.js'
import type { EvalInfo, LogEntry, StepInfo } from './events.js'
import { setLabel } from '../hub/hub-model.js'
import { byDataset } from '../eval/translation.js'

/** One TFRecord: the length and its checksum, the bytes and theirs. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, BigInt(data.length), true)
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true)
  out.set(data, 12)
  view.setUint32(12 + data.length, maskedCrc32c(data), true)
  return out
}

/** An Event holding scalars (Summary values) at a step. */
export function scalarsEvent(wallTime: number, step: number, scalars: [string, number][]): Uint8Array {
  const summary = new ProtoWriter()
  for (const [tag, value] of scalars) summary.message(1, new ProtoWriter().string(1, tag).float(2, value))
  return new ProtoWriter().double(1, wallTime).int(2, step).message(5, summary).finish()
}

/** The first Event of a file: its version. */
export function fileVersionEvent(wallTime: number): Uint8Array {
  return new ProtoWriter().double(1, wallTime).string(3, 'brain.Event:2').finish()
}

/**
 * A log entry's scalars, tagged as transformers' Trainer tags its own (train/loss, train/learning_rate, ...; eval/...),
 * non-finite values left out. `datasets`: the names of a run's datasets (several), whose losses get a tag each.
 */
export function scalarsOf(entry: LogEntry, datasets: string[] = []): [string, number][] {
  const out: [string, number][] = entry.type === 'step' ? stepScalars(entry, datasets) : evalScalars(entry)
  return out.filter(([, v]) => Number.isFinite(v))
}

function stepScalars(s: StepInfo, datasets: string[]): [string, number][] {
  const named = s.dataset !== undefined ? datasets[s.dataset] : undefined
  return [
    ['train/loss', s.loss],
    // Several datasets: each one's loss on its own curve (their scales differ); a loss's parts (SimCSE++'s two terms).
    ...(named !== undefined ? [[`train/loss/${named}`, s.loss] as [string, number]] : []),
    ...(Object.keys(s.parts).length > 1 ? Object.entries(s.parts).map(([k, v]) => [`train/loss/${k}`, v] as [string, number]) : []),
    ...Object.entries(s.dimLosses ?? {}).map(([d, v]) => [`train/loss/${d}_dims`, v] as [string, number]),
    ['train/learning_rate', s.lr],
    ['train/grad_norm', s.gradNorm],
    ['train/epoch', s.epoch],
    ['train/sentences_per_second', s.sentencesPerSecond],
    ['train/alignment', s.alignment],
    ['train/uniformity', s.uniformity],
  ]
}

function evalScalars(e: EvalInfo): [string, number][] {
  return [
    ...e.results.map((r) => [`eval/${setLabel(r.file)}/spearman`, r.spearman] as [string, number]),
    ...(e.average !== undefined && e.results.length > 1 ? [['eval/average_spearman', e.average] as [string, number]] : []),
    ...Object.entries(e.dimSpearman ?? {}).map(([d, v]) => [`eval/spearman_${d}_dims`, v] as [string, number]),
    ...(e.retrieval ?? []).flatMap((r) => {
      const name = `eval/${setLabel(r.dataset)}_${r.split}`
      return [
        [`${name}/ndcg@10`, r.ndcgAt10],
        [`${name}/mrr@10`, r.mrrAt10],
        [`${name}/recall@100`, r.recallAt100],
      ] as [string, number][]
    }),
    // MTEB's other task kinds: each set's scores under its name and split.
    ...task(e.classification, (r) => ({ accuracy: r.accuracy, f1: r.f1 })),
    ...task(e.clustering, (r) => ({ v_measure: r.vMeasure })),
    ...task(e.pairClassification, (r) => ({ ap: r.ap })),
    ...task(e.reranking, (r) => ({ map: r.map, 'mrr@10': r.mrr10 })),
    ...task(e.summarization, (r) => ({ cosine_spearman: r.cosineSpearman, cosine_pearson: r.cosinePearson })),
    ...task(byDataset(e.translation), (r) => ({
      accuracy: r.accuracy,
      src2trg_accuracy: r.sourceToTarget,
      trg2src_accuracy: r.targetToSource,
      f1: r.f1,
    })),
    // (as sentence-transformers logs its MSEEvaluator: -100 × the MSE)
    ...task(byDataset(e.mse), (r) => ({ negative_mse: -100 * r.mse })),
    ...(e.selection?.metric === 'mean' ? [['eval/mean_main_score', e.selection.score] as [string, number]] : []),
    ...(e.selection?.metric === 'meanByType' ? [['eval/mean_main_score_by_task_type', e.selection.score] as [string, number]] : []),
  ]
}

function task<R extends { dataset: string; split?: string; subset?: string }>(
  results: R[] | undefined,
  scores: (r: R) => Record<string, number>,
) {
  return (results ?? []).flatMap((r) => {
    const name = `eval/${setLabel(r.dataset)}${r.subset ? `_${r.subset}` : ''}${r.split ? `_${r.split}` : ''}`
    return Object.entries(scores(r)).map(([k, v]) => [`${name}/${k}`, v] as [string, number])
  })
}

export class TensorBoardLog {
  private constructor(
    private readonly file: string,
    private readonly datasets: string[],
    /** Wall-clock seconds of the run's training second 0 (entries carry their training seconds). */
    private readonly origin: number,
    private lastElapsed: number,
  ) {}

  /**
   * Starts `dir`'s event file anew (any earlier one removed) with the run's kept log `history` (a resumed run's), then
   * appends as log() is called.
   */
  static async open(dir: string, history: LogEntry[], datasets: string[] = []): Promise<TensorBoardLog> {
    await mkdir(dir, { recursive: true })
    for (const f of existsSync(dir) ? await readdir(dir) : []) if (f.startsWith('events.out.tfevents.')) await rm(join(dir, f))
    const now = Date.now() / 1000
    const steps = history.filter((e): e is StepInfo => e.type === 'step')
    const lastElapsed = steps.at(-1)?.elapsedSeconds ?? 0
    const file = join(dir, `events.out.tfevents.${Math.floor(now)}.${hostname()}`)
    const log = new TensorBoardLog(file, datasets, now - lastElapsed, 0)
    const records = [tfRecord(fileVersionEvent(now)), ...history.map((e) => log.record(e))]
    await writeFileAtomic(file, Buffer.concat(records))
    log.lastElapsed = lastElapsed
    return log
  }

  async log(entry: LogEntry): Promise<void> {
    await appendFile(this.file, this.record(entry))
  }

  /** An entry's record; its wall time from its training seconds (an evaluation: the step's before it). */
  private record(entry: LogEntry): Uint8Array {
    if (entry.type === 'step') this.lastElapsed = entry.elapsedSeconds
    return tfRecord(scalarsEvent(this.origin + this.lastElapsed, entry.step, scalarsOf(entry, this.datasets)))
  }
}
