// The output directory of a run: the model files at the top, and the run's state under run/
// (run-layout.ts): train.jsonl (appended per step and evaluation; on resume, cut back to the
// checkpoint's step), training_args.json, checkpoints, and at the end metrics.json and loss_curve.svg;
// plus the resume checks. Everything but the log's appends is written atomically.
import { existsSync } from 'node:fs'
import { appendFile, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { DataFingerprint } from '../data/sentences.js'
import type { BertModel } from '../model/bert.js'
import type { AdamW } from '../optim/adamw.js'
import type { Tokenizer } from '../tokenizer.js'
import { architectureName, hfTokenizerClass } from '../model/config.js'
import { writeFileAtomic } from '../util/atomic-write.js'
import { readCheckpointTensors, saveCheckpoint, type CheckpointState, type LoadedCheckpoint } from './checkpoint.js'
import { SELECTION_METRIC_NAMES, type Best, type EvalInfo, type LogEntry, type StepInfo } from './events.js'
import { lossCurveSvg } from './plot.js'
import { modelCard, type ModelCardInput } from './model-card.js'
import { denseModulePath, writeSentenceTransformersFiles, type InheritedSettings } from './sentence-transformers.js'
import { prepareRunState, runPath, TENSORBOARD_DIR } from './run-layout.js'
import { TensorBoardLog } from './tensorboard.js'
import type { TokenizerCopy } from './tokenizer-copy.js'
import { setLabel } from '../hub/hub-model.js'
import type { Pooling } from '../model/pooling.js'
import type { SimilarityFn } from '../embed/similarity-fn.js'

/** Where a resumed run picks up. */
export interface ResumePoint {
  /** The checkpoint directory that was loaded. */
  dir: string
  step: number
  dataPosition: unknown
  /** A run of several datasets: each one's stream position. */
  dataPositions?: unknown[]
  best: Best
  elapsedSeconds: number
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n'

/**
 * Checks that a loaded checkpoint continues this run (before any model exists): the same data, the
 * fixed options (`runOptions`) and no more steps than this run has.
 */
export function checkResumable(
  ck: LoadedCheckpoint,
  runOptions: Record<string, unknown>,
  run: { data: DataFingerprint[]; totalSteps: number },
): void {
  const ds = ck.state.datasets
  const read = ds ? ds.map((d) => d.data) : ck.state.data ? [ck.state.data] : null
  if (read && read.length !== run.data.length)
    throw new Error(
      `--resume: the checkpointed run read ${read.length} data file(s), this one ${run.data.length}: give the run's --data again`,
    )
  const paths = runOptions.data
  read?.forEach((was, i) => {
    const now = run.data[i]
    if (was.sha256 === now.sha256 && was.bytes === now.bytes) return
    const which = Array.isArray(paths) ? `data file ${String(paths[i])}` : 'data file'
    throw new Error(
      `--resume: the ${which} is not the one the checkpointed run read (then ${was.lines} sentences, ${was.bytes} bytes, ` +
        `sha256 ${was.sha256.slice(0, 12)}…; now ${now.lines} sentences, ${now.bytes} bytes, sha256 ${now.sha256.slice(0, 12)}…)`,
    )
  })
  if (ck.state.step > run.totalSteps)
    throw new Error(`--resume: ${ck.dir} is at step ${ck.state.step}, past the ${run.totalSteps} steps of this run`)
  for (const [k, now] of Object.entries(runOptions)) {
    const was = ck.state.options[k]
    if (JSON.stringify(recorded(k, was)) !== JSON.stringify(recorded(k, now)))
      throw new Error(`--resume: option ${k} was ${JSON.stringify(was)} in the checkpointed run, now ${JSON.stringify(now)}`)
  }
}

// An option's value as a resume compares it: the data file by its name; an option a checkpoint does not record
// (written before the option existed) as what those runs did: format text, batchSampler random, symmetric false,
// lrSchedule linear, others unset (null).
const BEFORE_RECORDED: Record<string, unknown> = {
  format: 'text',
  batchSampler: 'random',
  symmetric: false,
  lrSchedule: 'linear',
  datasetSampler: 'proportional',
}
function recorded(k: string, v: unknown): unknown {
  if ((k === 'data' || k === 'teacher') && typeof v === 'string') return basename(v)
  if (k === 'data' && Array.isArray(v)) return v.map((p) => (typeof p === 'string' ? basename(p) : p))
  return v !== undefined ? v : (BEFORE_RECORDED[k] ?? null)
}

/** Loads the checkpoint's parameters and AdamW state into the model and optimizer; returns where the run picks up. */
export async function applyCheckpoint(ck: LoadedCheckpoint, model: BertModel, opt: AdamW): Promise<ResumePoint> {
  const dense = ck.state.denseModules ?? 0
  if (dense !== model.dense.length)
    throw new Error(
      dense === 0
        ? `--resume: the checkpoint was written by simcsepp before it trained Dense modules: it holds an MLP head in place ` +
            `of the model's ${model.dense.length} Dense module(s); start the run over (--overwrite)`
        : `--resume: the checkpoint trained ${dense} Dense module(s), this model has ${model.dense.length}: resume with the --model of the checkpointed run`,
    )
  if (ck.size !== model.layout.total)
    throw new Error(
      `--resume: the checkpoint holds ${ck.size} parameters, this model ${model.layout.total}: ` +
        `resume with the --model or --config of the checkpointed run`,
    )
  await readCheckpointTensors(ck, { params: model.params, adamM: opt.m, adamV: opt.v })
  opt.step = ck.state.step
  return {
    dir: ck.dir,
    step: ck.state.step,
    dataPosition: ck.state.dataPosition,
    ...(ck.state.datasets ? { dataPositions: ck.state.datasets.map((d) => d.position) } : {}),
    best: ck.state.best,
    elapsedSeconds: ck.state.elapsedSeconds,
  }
}

export class RunDir {
  /** What training_args.json holds (the model card is written from it). */
  private args: Record<string, unknown> = {}
  /** The encoder's architecture by name, once the model has been saved (for the model card). */
  private architecture: string | undefined
  /** The Dense modules saved with the model (for the model card). */
  private denseModules = 0
  private similarityFn: SimilarityFn = 'cosine'
  /** The run's TensorBoard event file (tensorboard: true), kept as the log is. */
  private tensorboard: TensorBoardLog | null = null

  private constructor(
    readonly out: string,
    private readonly logPath: string,
    readonly history: LogEntry[],
  ) {}

  /**
   * Opens the log of `out` (made and locked by out-dir.ts), keeping the entries up to `startStep` (0: a
   * fresh log). A run from before run/ existed has its logs moved there first.
   */
  static async open(out: string, startStep: number): Promise<RunDir> {
    await prepareRunState(out)
    const logPath = runPath(out, 'train.jsonl')
    return new RunDir(out, logPath, await readLog(logPath, startStep))
  }

  async log(entry: LogEntry): Promise<void> {
    this.history.push(entry)
    await appendFile(this.logPath, JSON.stringify(entry) + '\n')
    await this.tensorboard?.log(entry)
  }

  /** training_args.json; with args.tensorboard, run/tensorboard/'s event file started (with the kept log, on resume). */
  async writeArgs(args: Record<string, unknown>): Promise<void> {
    this.args = args
    await writeFileAtomic(runPath(this.out, 'training_args.json'), json(args))
    if (args.tensorboard === true)
      this.tensorboard = await TensorBoardLog.open(runPath(this.out, TENSORBOARD_DIR), this.history, datasetNames(args))
  }

  /** The model as Hugging Face and sentence-transformers load it (the MLP head is left out; Dense modules in folders). */
  async saveModel(
    model: BertModel,
    tokenizer: Tokenizer,
    maxLen: number,
    pooling: Pooling,
    inherited: InheritedSettings = {},
  ): Promise<void> {
    await model.save(this.out)
    this.architecture = architectureName(model.config)
    this.denseModules = model.dense.length
    this.similarityFn = inherited.similarityFnName ?? 'cosine'
    await tokenizer.save(this.out, { tokenizerClass: hfTokenizerClass(model.config) })
    for (let i = 0; i < model.dense.length; i++) await model.saveDenseModule(i, join(this.out, denseModulePath(i)))
    await writeSentenceTransformersFiles(this.out, model.config.hiddenSize, maxLen, pooling, inherited, model.dense.length)
  }

  async saveCheckpoint(model: BertModel, opt: AdamW, state: CheckpointState, tokenizer: TokenizerCopy): Promise<void> {
    await saveCheckpoint(this.out, {
      params: model.params,
      adamM: opt.m,
      adamV: opt.v,
      state,
      tokenizer,
    })
  }

  /** run/metrics.json (best, evaluations, last step), run/loss_curve.svg and the model card (README.md, at the top). */
  async finish(best: Best, data: ModelCardInput['data']): Promise<void> {
    const steps = this.history.filter((h) => h.type === 'step') as StepInfo[]
    const evals = this.history.filter((h) => h.type === 'eval') as EvalInfo[]
    await writeFileAtomic(runPath(this.out, 'metrics.json'), json({ best, evals, lastStep: steps.at(-1) ?? null }))
    await writeFileAtomic(
      runPath(this.out, 'loss_curve.svg'),
      lossCurveSvg(curvePoints(steps, evals, datasetNames(this.args)), scorePanel(evals)),
    )
    await writeFileAtomic(
      join(this.out, 'README.md'),
      modelCard({
        args: this.args,
        steps,
        evals,
        best,
        data,
        architecture: this.architecture,
        denseModules: this.denseModules,
        similarityFn: this.similarityFn,
      }),
    )
  }
}

/** Reads the log of a resumed run, dropping entries past the checkpoint's step (they will be redone). */
async function readLog(path: string, keepUpToStep: number): Promise<LogEntry[]> {
  if (!existsSync(path)) return []
  if (keepUpToStep === 0) {
    await writeFileAtomic(path, '')
    return []
  }
  const kept: LogEntry[] = []
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    if (!line.trim()) continue
    try {
      const e = JSON.parse(line)
      if (e.step <= keepUpToStep) kept.push(e)
    } catch {
      // A line cut by a kill: dropped.
    }
  }
  await writeFileAtomic(path, kept.map((e) => JSON.stringify(e) + '\n').join(''))
  return kept
}

/**
 * An evaluation's selection score: as recorded, or in a log written before selections were (retrieval or STS only)
 * the first STS file's Spearman, else the first retrieval set's nDCG@10.
 */
function selectionOf(e: EvalInfo): EvalInfo['selection'] {
  if (e.selection) return e.selection
  if (e.spearman !== undefined && e.results.length) return { set: setLabel(e.results[0].file), metric: 'spearman', score: e.spearman }
  const r = e.retrieval?.[0]
  return r && { set: `${setLabel(r.dataset)} (${r.split})`, metric: 'ndcgAt10', score: r.ndcgAt10 }
}

/** The score panel's labels: STS (the default), or the set and measure the last evaluation selects by. */
function scorePanel(evals: EvalInfo[]): { stsLabel?: string; stsAxis?: string } {
  const last = evals.length ? selectionOf(evals[evals.length - 1]) : undefined
  return last && last.metric !== 'spearman'
    ? {
        stsLabel:
          last.metric === 'mean' || last.metric === 'meanByType'
            ? `${SELECTION_METRIC_NAMES[last.metric]} (${last.set})`
            : `${last.set} ${SELECTION_METRIC_NAMES[last.metric]}`,
        stsAxis: `${SELECTION_METRIC_NAMES[last.metric]} ×100`,
      }
    : {}
}

/** A run of several datasets: each one's name on the loss curve (its file's name and objective). */
function datasetNames(args: Record<string, unknown>): string[] {
  const { data, objective } = args
  if (!Array.isArray(data)) return []
  return data.map((d, i) => `${setLabel(String(d))} (${String(Array.isArray(objective) ? objective[i] : objective)})`)
}

function curvePoints(steps: StepInfo[], evals: EvalInfo[], datasets: string[] = []) {
  const rows: { step: number; loss: number; lossParts?: Record<string, number>; sts?: number }[] = steps.map((s) => ({
    step: s.step,
    loss: s.loss,
    // Several datasets: a curve each (their losses differ in scale). A Matryoshka run's curves: each size's loss
    // (its parts are sums over the sizes).
    lossParts:
      s.dataset !== undefined && datasets[s.dataset]
        ? { [datasets[s.dataset]]: s.loss }
        : s.dimLosses
          ? Object.fromEntries(Object.entries(s.dimLosses).map(([d, l]) => [`${d} dims`, l]))
          : s.parts,
  }))
  // The selection score ×100 (Spearman is so already) of the evaluations that select as the last one does.
  const last = evals.length ? selectionOf(evals[evals.length - 1]) : undefined
  for (const e of evals) {
    const s = selectionOf(e)
    if (s && last && s.metric === last.metric && s.set === last.set)
      rows.push({ step: e.step, loss: NaN, sts: s.metric === 'spearman' ? s.score : 100 * s.score })
  }
  return rows.sort((a, b) => a.step - b.step)
}
