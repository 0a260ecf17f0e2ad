// Plain-text tables for the terminal (right-aligned numbers, left-aligned text), and the tables of the
// commands that print them: STS results (eval) and the benchmarks. Presentation lives in the CLI; the
// library and the benchmarks return rows.
import { setLabel } from '../hub/hub-model.js'
import { formatBytes } from '../util/format.js'
import type { StsFilesResult } from '../eval/sts.js'
import type { RetrievalResult } from '../eval/retrieval.js'
import type { TranslationResult } from '../eval/translation.js'
import type { MseResult } from '../eval/mse.js'
import type { LossBenchRow } from '../bench/losses.js'
import type { GemmBenchRow } from '../bench/gemm.js'
import type { StepBenchRow } from '../bench/step.js'
import type { KernelShare } from '../bench/op-profile.js'
import type { EncodeBenchRow } from '../bench/encode.js'
import type { DistBenchRow } from '../bench/dist.js'
import type { SearchBenchRow } from '../bench/search.js'
import type { AttentionBenchRow } from '../bench/attention.js'

export function formatTable(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => String(c)))
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)))
  const isNum = headers.map((_, i) => cells.every((r) => /^[-+0-9.,x%eE]*$|^n\/a|^-$/.test(r[i] ?? '')))
  const fmt = (r: string[]) =>
    r
      .map((c, i) => (isNum[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [fmt(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(fmt)].join('\n')
}

/** The retrieval measures ×100 per dataset (nDCG@10 first: BEIR's and MTEB's headline number), in 80 columns. */
/** How a binary ranking is named in a table: "binary", "binary ×4", "binary ×4, vectors". */
function searchLabel(r: RetrievalResult): string {
  return r.search.replace('binary, rescore ', 'binary ×').replace(' by vectors', ', vectors')
}

export function retrievalTable(results: RetrievalResult[]): string {
  const pct = (x: number) => (100 * x).toFixed(2)
  // A long folder name keeps its end (the split in parentheses, after it) so that rows fit 80 columns.
  const label = (r: RetrievalResult) => {
    const name = `${setLabel(r.dataset)} (${r.split})`
    return name.length <= 20 ? name : `…${name.slice(name.length - 19)}`
  }
  // A binary ranking (eval --binary) sits under its dataset's exact one, named by how it ranked ("binary ×4").
  return formatTable(
    ['dataset', 'queries', 'docs', 'nDCG@10', 'MAP@10', 'MRR@10', 'R@10', 'R@100'],
    results.map((r) => [
      r.search === 'exact' ? label(r) : `  ${searchLabel(r)}`,
      r.queries,
      r.documents,
      pct(r.ndcgAt10),
      pct(r.scores.map[10]),
      pct(r.scores.mrr[10]),
      pct(r.scores.recall[10]),
      pct(r.scores.recall[100]),
    ]),
  )
}

/**
 * A Matryoshka model at each size (eval --matryoshka-dims): a row per size, Spearman ×100 of each STS file and
 * their average, nDCG@10 ×100 of each retrieval set.
 */
export function matryoshkaTable(
  sizes: {
    dim: number
    sts: StsFilesResult | null
    retrieval: RetrievalResult[]
    translation?: TranslationResult[]
    /** Other tasks' main scores (fractions), by column name. */
    tasks?: { name: string; value: number }[]
  }[],
): string {
  const first = sizes[0]
  const headers = [
    'dims',
    ...(first.sts ? [...first.sts.results.map((r) => setLabel(r.file)), 'average'] : []),
    ...first.retrieval.map((r) => `${setLabel(r.dataset)}${r.search === 'exact' ? '' : ` ${searchLabel(r)}`} nDCG@10`),
    ...(first.translation ?? []).map((r) => `${translationName(r)} accuracy`),
    ...(first.tasks ?? []).map((t) => t.name),
  ]
  return formatTable(
    headers,
    sizes.map((s) => [
      s.dim,
      ...(s.sts ? [...s.sts.results.map((r) => r.spearman.toFixed(2)), s.sts.average.toFixed(2)] : []),
      ...s.retrieval.map((r) => (100 * r.ndcgAt10).toFixed(2)),
      ...(s.translation ?? []).map((r) => (100 * r.accuracy).toFixed(2)),
      ...(s.tasks ?? []).map((t) => (100 * t.value).toFixed(2)),
    ]),
  )
}

/** Translation matching ×100 per file: each direction's accuracy, their mean (TranslationEvaluator's score), MTEB's bitext F1. */
export function translationTable(results: (TranslationResult & { subset?: string })[]): string {
  const pct = (x: number) => (100 * x).toFixed(2)
  return formatTable(
    ['translation pairs', 'pairs', 'src->tgt', 'tgt->src', 'accuracy', 'F1 (MTEB)'],
    results.map((r) => [translationName(r), r.pairs, pct(r.sourceToTarget), pct(r.targetToSource), pct(r.accuracy), pct(r.f1)]),
  )
}

/** Distillation's MSE per file (sentence-transformers' MSEEvaluator): ×100, and its negative_mse (-100 × MSE). */
export function mseTable(results: MseResult[]): string {
  return formatTable(
    ['distillation sentences', 'sentences', 'MSE x100', 'negative_mse'],
    results.map((r) => [setLabel(r.file), r.sentences, (100 * r.mse).toFixed(4), (-100 * r.mse).toFixed(4)]),
  )
}

/** A translation result's name: its file's or folder's, and a multilingual dataset's subset (a language pair). */
const translationName = (r: TranslationResult & { subset?: string }) => setLabel(r.file) + (r.subset ? `/${r.subset}` : '')

/** Spearman and Pearson ×100 per file (an STS12–16 folder: "all", then each subset and their mean), and the average. */
export function stsTable(result: StsFilesResult): string {
  const rows: (string | number)[][] = []
  for (const r of result.results) {
    rows.push([setLabel(r.file) + (r.setting ? ` (${r.setting})` : ''), r.pairs, r.spearman.toFixed(2), r.pearson.toFixed(2)])
    for (const s of r.subsets ?? []) rows.push([`  ${s.subset}`, s.pairs, s.spearman.toFixed(2), s.pearson.toFixed(2)])
    if (r.mean) rows.push(['  mean of subsets', '', r.mean.spearman.toFixed(2), r.mean.pearson.toFixed(2)])
  }
  rows.push(['average', '', result.average.toFixed(2), result.averagePearson.toFixed(2)])
  return formatTable(['file', 'pairs', 'Spearman', 'Pearson'], rows)
}

export function lossBenchTable(rows: LossBenchRow[]): string {
  const ms = (v: number | null) => (v === null ? '-' : v < 10 ? v.toFixed(3) : v.toFixed(1))
  return formatTable(
    ['device', 'N', 'D', 'fused ms', 'unfused ms', 'speed-up', 'fused extra mem', 'unfused extra mem', 'note'],
    rows.map((r) => [
      r.device,
      r.n,
      r.d,
      ms(r.fusedMs),
      ms(r.unfusedMs),
      r.speedup === null ? '-' : `${r.speedup.toFixed(2)}x`,
      r.fusedWorkspaceBytes === null ? '-' : formatBytes(r.fusedWorkspaceBytes),
      r.unfusedWorkspaceBytes === null ? '-' : formatBytes(r.unfusedWorkspaceBytes),
      r.note ?? '',
    ]),
  )
}

export function gemmBenchTable(rows: GemmBenchRow[]): string {
  const bf16 = rows.some((r) => r.bf16Gflops !== undefined)
  return formatTable(
    [
      'M',
      'N',
      'K',
      'form',
      'product',
      'simcsepp GFLOP/s',
      'system BLAS GFLOP/s',
      'ratio',
      ...(bf16 ? ['simcsepp bf16 GFLOP/s', 'bf16 / fp32'] : []),
    ],
    rows.map((r) => [
      r.m,
      r.n,
      r.k,
      r.form,
      r.role ?? '',
      r.oursGflops.toFixed(1),
      r.blasGflops === null ? '-' : r.blasGflops.toFixed(1),
      r.ratio === null ? '-' : `${(100 * r.ratio).toFixed(0)}%`,
      ...(bf16 ? [r.bf16Gflops?.toFixed(1) ?? '-', r.bf16Speedup === undefined ? '-' : `${r.bf16Speedup.toFixed(2)}x`] : []),
    ]),
  )
}

export function encodeBenchTable(rows: EncodeBenchRow[]): string {
  const rate = (v: number | null) => (v === null ? '-' : v < 100 ? v.toFixed(1) : v.toFixed(0))
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`
  const bf16 = rows.some((r) => r.bf16SortedPerSec !== undefined) // bench encode --bf16
  const int8 = rows.some((r) => r.int8SortedPerSec !== undefined) // bench encode --int8
  const q8 = rows.some((r) => r.q8PerSec !== undefined) // bench encode --q8
  return formatTable(
    [
      'model',
      'device',
      'sentences',
      'batch',
      'tokens/sent',
      'sorted sent/s',
      'input-order sent/s',
      'speed-up',
      'padding sorted',
      'padding input-order',
      'onnxruntime sent/s',
      'vs onnxruntime',
      'no-graphs sent/s',
      'graphs speed-up',
      ...(bf16 ? ['bf16 sent/s', 'bf16 speed-up', 'bf16 max 1-cos'] : []),
      ...(int8 ? ['int8 sent/s', 'int8 speed-up', 'int8 max 1-cos'] : []),
      ...(q8 ? ['q8 onnxruntime sent/s', 'q8 vs fp32 onnxruntime', 'q8 max 1-cos'] : []),
      'note',
    ],
    rows.map((r) => [
      r.model,
      r.device,
      r.sentences,
      r.batchSize,
      r.meanTokens.toFixed(1),
      rate(r.sortedPerSec),
      rate(r.inputOrderPerSec),
      r.speedup === null ? '-' : `${r.speedup.toFixed(2)}x`,
      pct(r.paddingSorted),
      pct(r.paddingInputOrder),
      rate(r.onnxruntimePerSec),
      r.onnxruntimePerSec === null || r.sortedPerSec === null ? '-' : `${(r.sortedPerSec / r.onnxruntimePerSec).toFixed(2)}x`,
      rate(r.noGraphsSortedPerSec),
      r.noGraphsSortedPerSec === null || r.sortedPerSec === null ? '-' : `${(r.sortedPerSec / r.noGraphsSortedPerSec).toFixed(2)}x`,
      ...(bf16
        ? [
            rate(r.bf16SortedPerSec ?? null),
            r.bf16SortedPerSec === undefined || r.sortedPerSec === null ? '-' : `${(r.bf16SortedPerSec / r.sortedPerSec).toFixed(2)}x`,
            r.bf16MaxCosineDistance === undefined ? '-' : r.bf16MaxCosineDistance.toExponential(1),
          ]
        : []),
      ...(int8
        ? [
            rate(r.int8SortedPerSec ?? null),
            r.int8SortedPerSec === undefined || r.sortedPerSec === null ? '-' : `${(r.int8SortedPerSec / r.sortedPerSec).toFixed(2)}x`,
            r.int8MaxCosineDistance === undefined ? '-' : r.int8MaxCosineDistance.toExponential(1),
          ]
        : []),
      ...(q8
        ? [
            rate(r.q8PerSec ?? null),
            r.q8PerSec === undefined || r.onnxruntimePerSec === null ? '-' : `${(r.q8PerSec / r.onnxruntimePerSec).toFixed(2)}x`,
            r.q8MaxCosineDistance === undefined ? '-' : r.q8MaxCosineDistance.toExponential(1),
          ]
        : []),
      r.note ?? '',
    ]),
  )
}

/** `bench step --products`: per row, its matrix products' time at the GEMM's rates and their share of the step. */
export function productsLines(rows: StepBenchRow[]): string {
  return rows
    .map((r) => {
      const label = `${r.model} ${r.device} ${r.precision} B=${r.batchSize} T=${r.seqLen}`
      if (!r.products) return `${label}: matrix products not timed (the CPU only, without --micro-batch)`
      const step = 1 / r.stepsPerSec
      const share = (100 * r.products.share).toFixed(1)
      return `${label}: products ${r.products.seconds.toFixed(3)} s of the ${step.toFixed(3)} s step (${share}%) at bench gemm's rates`
    })
    .join('\n')
}

/** `bench step`: one SimCSE++ training step per model, device and batch size. */
export function stepBenchTable(rows: StepBenchRow[]): string {
  return formatTable(
    ['model', 'device', 'precision', 'batch', 'T', 'steps/s', 'sent/s', 'tokens/s', 'TFLOP/s', 'MFU', 'tensor memory', 'note'],
    rows.map((r) => [
      r.model,
      r.device,
      r.precision,
      r.batchSize,
      r.seqLen,
      r.stepsPerSec.toFixed(r.stepsPerSec < 10 ? 3 : 1),
      r.sentencesPerSec.toFixed(0),
      r.tokensPerSec.toFixed(0),
      r.tflops.toFixed(3),
      r.mfu === null ? '-' : `${(100 * r.mfu).toFixed(1)}%`,
      formatBytes(r.peakTensorBytes),
      r.note ?? '',
    ]),
  )
}

/** `bench batch`: sentences/s and memory per batch size, whole batch against micro-batches. */
export function batchBenchTable(rows: (StepBenchRow & { setting: string })[]): string {
  return formatTable(
    ['model', 'device', 'batch', 'setting', 'sent/s', 'activations', 'tensor memory', 'peak RSS', 'note'],
    rows.map((r) => [
      r.model,
      r.device,
      r.batchSize,
      r.setting,
      r.sentencesPerSec.toFixed(1),
      formatBytes(r.activationBytes),
      formatBytes(r.peakTensorBytes),
      formatBytes(r.peakRssBytes),
      r.note ?? '',
    ]),
  )
}

/** `bench step --profile`: each op category's milliseconds per step and share of the step, per configuration. */
export function profileTable(rows: StepBenchRow[]): string {
  const out: string[] = []
  for (const r of rows) {
    if (!r.profile) continue
    const { stepMs, stepCpuMs, stepGpuMs, ops } = r.profile
    if (stepGpuMs !== undefined) {
      // CUDA: the device's time per op category (events around each op, no graphs), and the host's.
      out.push(
        `${r.model} ${r.device} B=${r.batchSize} T=${r.seqLen}: ${stepGpuMs.toFixed(2)} ms of device time per profiled step ` +
          `(without CUDA graphs), ${stepMs.toFixed(2)} ms on the host's clock`,
      )
      out.push(
        formatTable(
          ['op category', 'GPU ms/step', 'GPU share', 'host ms/step', 'calls/step'],
          ops.map((o) => [
            o.category,
            (o.gpuMilliseconds ?? 0).toFixed(3),
            `${((100 * (o.gpuMilliseconds ?? 0)) / stepGpuMs).toFixed(1)}%`,
            o.milliseconds.toFixed(3),
            o.calls.toFixed(0),
          ]),
        ),
      )
      if (r.profile.kernels?.length) out.push('', kernelTable(r.profile.kernels, stepGpuMs))
      continue
    }
    out.push(
      `${r.model} ${r.device} B=${r.batchSize} T=${r.seqLen}: ${stepMs.toFixed(1)} ms per profiled step, ` +
        `${stepCpuMs.toFixed(1)} ms of CPU time (all threads; unlike the wall clock, not counting other processes)`,
    )
    out.push(
      formatTable(
        ['op category', 'ms/step', 'share', 'CPU ms/step', 'CPU share', 'calls/step'],
        ops.map((o) => [
          o.category,
          o.milliseconds.toFixed(2),
          `${((100 * o.milliseconds) / stepMs).toFixed(1)}%`,
          o.cpuMilliseconds.toFixed(2),
          `${((100 * o.cpuMilliseconds) / stepCpuMs).toFixed(1)}%`,
          o.calls.toFixed(0),
        ]),
      ),
    )
  }
  return out.join('\n')
}

/**
 * A CUDA profile's kernels: per op category, each kernel, product, copy and fill its ops launched, with its device
 * time per step, its share of the step's device time and, for a product, its TFLOP/s; where the device counted them
 * (the emulator), the megabytes of device memory each read and wrote per step. Launches under 0.05% of the step are
 * summed into one row per category.
 */
export function kernelTable(kernels: KernelShare[], stepGpuMs: number): string {
  const bytes = kernels.some((k) => k.readMegabytes !== undefined)
  const rows: (string | number)[][] = []
  type Small = { count: number; launches: number; ms: number; read: number; written: number }
  const small = new Map<string, Small>()
  const share = (ms: number) => `${((100 * ms) / stepGpuMs).toFixed(1)}%`
  const mb = (read: number, written: number) => (bytes ? [read.toFixed(2), written.toFixed(2)] : [])
  const flush = (category: string) => {
    const t = small.get(category)
    if (t) {
      const what = `(${t.count} more, each < 0.05%)`
      rows.push([category, what, t.launches.toFixed(0), t.ms.toFixed(3), share(t.ms), '', ...mb(t.read, t.written)])
    }
    small.delete(category)
  }
  let last = ''
  for (const k of kernels) {
    if (k.category !== last) flush(last)
    last = k.category
    if (k.gpuMilliseconds < 0.0005 * stepGpuMs) {
      const t = small.get(k.category) ?? { count: 0, launches: 0, ms: 0, read: 0, written: 0 }
      t.count += 1
      t.launches += k.launches
      t.ms += k.gpuMilliseconds
      t.read += k.readMegabytes ?? 0
      t.written += k.writtenMegabytes ?? 0
      small.set(k.category, t)
      continue
    }
    rows.push([
      k.category,
      k.kernel,
      k.launches.toFixed(0),
      k.gpuMilliseconds.toFixed(3),
      share(k.gpuMilliseconds),
      k.tflops === null ? '' : k.tflops >= 0.1 ? k.tflops.toFixed(1) : k.tflops.toPrecision(2),
      ...mb(k.readMegabytes ?? 0, k.writtenMegabytes ?? 0),
    ])
  }
  flush(last)
  const head = ['op category', 'kernel', 'launches/step', 'GPU ms/step', 'GPU share', 'TFLOP/s']
  return formatTable(bytes ? [...head, 'MB read/step', 'MB written/step'] : head, rows)
}

/** `bench dist`: per step, compute and communication (ms), bytes handed to the collectives, throughput. */
export function distBenchTable(rows: DistBenchRow[]): string {
  return formatTable(
    ['ranks', 'threads/rank', 'step ms', 'compute ms', 'comm ms', 'payload/step', 'ring bytes/rank', 'sent/s', 'speedup'],
    rows.map((r) => [
      r.ranks,
      r.threadsPerRank,
      r.stepMs.toFixed(1),
      r.computeMs.toFixed(1),
      r.communicationMs.toFixed(1),
      r.payloadBytes ? formatBytes(r.payloadBytes) : '-',
      r.ringBytesPerRank ? formatBytes(r.ringBytesPerRank) : '-',
      r.sentencesPerSec.toFixed(0),
      `${r.speedup.toFixed(2)}x`,
    ]),
  )
}

/** bench search: per way of searching, the median ms per batch, the speed over exact search, the index's size. */
export function searchBenchTable(rows: SearchBenchRow[]): string {
  return formatTable(
    ['search', 'ms / batch', 'speed', 'index MB'],
    rows.map((r) => [r.search, r.medianMs.toFixed(2), `${r.speedup.toFixed(1)}x`, (r.indexBytes / 1e6).toFixed(1)]),
  )
}

/** bench attention: one row per device, length, probabilities and path; the speed against the first path's row. */
export function attentionBenchTable(rows: AttentionBenchRow[]): string {
  return formatTable(
    ['device', 'path', 'B', 'T', 'NH x HS', 'probs', 'ms', 'GFLOP/s', 'speed', 'note'],
    rows.map((r) => [
      r.device,
      r.path,
      r.batch,
      r.seqLen,
      `${r.heads}x${r.headSize}`,
      r.probs,
      r.ms > 0 ? r.ms.toFixed(3) : '-',
      r.ms > 0 ? String(Number((r.tflops * 1000).toPrecision(3))) : '-',
      r.ms > 0 ? `${r.speedup.toFixed(2)}x` : '-',
      r.note ?? '',
    ]),
  )
}
