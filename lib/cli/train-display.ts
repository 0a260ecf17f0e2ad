// What `simcsepp train` (and the demo) show while training: messages, a progress bar on a TTY (plain
// lines otherwise), evaluation results, Ctrl-C handling, and a summary at the end (loss sparkline,
// best STS, where the files are). The library only reports through TrainHooks.
import { bestScore, formatScore } from '../train/evaluation.js'
import { taskScores } from '../train/task-evaluation.js'
import { SELECTION_METRIC_NAMES } from '../train/events.js'
import type { EvalInfo, StepInfo, TrainHooks, TrainResult } from '../train/train.js'
import { ProgressBar } from './progress.js'
import { sparkline } from './sparkline.js'
import { setLabel } from '../hub/hub-model.js'

export class TrainingDisplay {
  private bar: ProgressBar | null = null
  private readonly stop = new AbortController()

  /** Runs `fn` with hooks that draw progress; Ctrl-C stops after the step in progress, a second Ctrl-C at once. */
  async run<T>(fn: (hooks: TrainHooks) => Promise<T>): Promise<T> {
    // SIGTERM (timeout, Docker, Kubernetes) stops the same way as Ctrl-C: after the step, with a checkpoint.
    const onSigint = (signal: NodeJS.Signals) => {
      if (this.stop.signal.aborted) process.exit(signal === 'SIGTERM' ? 143 : 130)
      this.say(
        `${signal}: stopping after this step (${signal === 'SIGINT' ? 'Ctrl-C' : 'a second signal'} again to quit without a checkpoint)`,
      )
      this.stop.abort()
    }
    process.on('SIGINT', onSigint)
    process.on('SIGTERM', onSigint)
    try {
      return await fn({
        signal: this.stop.signal,
        onMessage: (s) => this.say(s),
        onStep: (s) => this.step(s),
        onEval: (e) => this.eval(e),
      })
    } finally {
      process.off('SIGINT', onSigint)
      process.off('SIGTERM', onSigint)
      this.bar?.finish()
    }
  }

  /** The closing lines; an interrupted run sets the exit code 130 instead. */
  summary(result: TrainResult): void {
    const steps = result.history.filter((h) => h.type === 'step') as StepInfo[]
    // Several datasets: a line each (their losses differ in scale), numbered in the order of --data.
    const groups = new Map<number | undefined, number[]>()
    for (const s of steps) groups.set(s.dataset, [...(groups.get(s.dataset) ?? []), s.loss])
    for (const [d, losses] of [...groups].sort(([a], [b]) => (a ?? 0) - (b ?? 0))) {
      const label = d === undefined ? 'loss' : `loss of data ${d + 1}`
      process.stderr.write(`${label} ${sparkline(losses, 50)}  ${losses[0].toFixed(4)} -> ${losses.at(-1)!.toFixed(4)}\n`)
    }
    if (result.best) {
      const { metric, score } = bestScore(result.best)
      process.stderr.write(`best ${formatScore(metric, score)} at step ${result.best.step}\n`)
    }
    if (result.interrupted) process.exitCode = 130
    else
      process.stderr.write(
        `model and tokenizer in ${result.out}; run state (train.jsonl, metrics.json, loss_curve.svg, checkpoint) in ${result.out}/run\n`,
      )
  }

  /** A line above the progress bar (or on its own without one). */
  say(s: string): void {
    if (this.bar) this.bar.log(s)
    else process.stderr.write(`${s}\n`)
  }

  private step(s: StepInfo): void {
    this.bar ??= new ProgressBar({ total: s.totalSteps, stream: process.stderr })
    // SimCSE++'s parts: its total can stand still for many steps while its two terms trade off.
    const parts = Object.keys(s.parts).length > 1 ? s.parts : {}
    this.bar.update(s.step, { loss: s.loss, ...parts, lr: s.lr.toExponential(1), 'sent/s': s.sentencesPerSecond.toFixed(1) })
  }

  private eval(e: EvalInfo): void {
    const files = e.results.map((r) => `${setLabel(r.file)} ${r.spearman.toFixed(2)}`).join(', ')
    const sets = (e.retrieval ?? []).map((r) => `${setLabel(r.dataset)} ${(100 * r.ndcgAt10).toFixed(2)}`).join(', ')
    const parts = [
      ...(files ? [`STS Spearman ${files}`] : []),
      ...(sets ? [`nDCG@10 ${sets}`] : []),
      ...taskScores(e).map((r) => `${r.set} ${r.measure} ${(100 * r.score).toFixed(2)}`),
      ...(e.selection?.metric === 'mean' || e.selection?.metric === 'meanByType'
        ? [`${SELECTION_METRIC_NAMES[e.selection.metric]} (${e.selection.set}) ${(100 * e.selection.score).toFixed(2)}`]
        : []),
    ]
    this.say(`step ${e.step}: ${parts.join('; ')}${e.best ? '  (best so far: model saved)' : ''}`)
    if (e.dimSpearman)
      this.say(
        `  cut to ${Object.entries(e.dimSpearman)
          .sort(([a], [b]) => Number(b) - Number(a))
          .map(([d, v]) => `${d}: ${v.toFixed(2)}`)
          .join(', ')}`,
      )
  }
}
