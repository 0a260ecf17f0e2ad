// scripts/gpu-check.mjs, the script a lent GPU machine runs (npm run gpu-check): its benchmark code runs
// nowhere else, and a GPU session is short and rare, so CI rehearses it. With --dry-run the benchmarks run
// on tiny shapes (on the host emulator too, where they are otherwise skipped), and --no-checks leaves out
// the CUDA-vs-CPU checks, which the other emulated tests run. Only the script's flow and its output files
// are asserted here; emulated timings mean nothing.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaStatus } from '../lib/index.js'
import { tempDir } from './helpers/train-corpus.js'

const status = cudaStatus()
const script = join(process.cwd(), 'scripts', 'gpu-check.mjs')
const skip = !status.available
  ? `CUDA unavailable (${status.reason})`
  : existsSync(join(process.cwd(), 'dist', 'index.js'))
    ? false
    : 'dist/ not built'

const json = (dir: string, name: string) => JSON.parse(readFileSync(join(dir, name), 'utf8'))

// The dry run takes 7 minutes alone on the emulator, more beside another test file (npm run test:emulated runs
// one per core): more than tap's 600 s a file, and a budget that leaves no section out.
t.setTimeout(1_100_000)

t.test('gpu-check --dry-run runs every benchmark section and writes its files', { skip }, async (t) => {
  const out = tempDir('simcsepp-gpu-check-')
  const r = spawnSync(process.execPath, [script, '--dry-run', '--no-checks', '--budget-seconds', '1000'], {
    encoding: 'utf8',
    // No Python: the PyTorch baseline (minutes of torch.compile) is skipped, as on a machine without torch.
    env: { ...process.env, OUT: out, SIMCSEPP_PYTHON: 'simcsepp-test-no-python' },
    timeout: 1_050_000,
  })
  const log = r.stdout
  t.equal(r.status, 0, `exit status (stderr: ${r.stderr.slice(-400)})`)
  t.match(log, /\n0 passed, 0 failed\n$/, 'the last line')
  t.notMatch(log, /^FAIL|threw/m, 'no section failed')
  t.equal(readFileSync(join(out, 'gpu-check.log'), 'utf8'), log, 'the log file holds what was printed')

  const losses = json(out, 'bench-losses.json').rows as { device: string; n: number; fusedMs: number; unfusedMs: number }[]
  t.same(
    losses.map((row) => `${row.device} ${row.n}`),
    ['cuda 8', 'cuda 64', 'cpu 8', 'cpu 64'],
    'loss benchmark rows',
  )
  t.ok(
    losses.every((row) => row.fusedMs > 0 && row.unfusedMs > 0),
    'each with both timings',
  )
  const attention = json(out, 'bench-attention.json')
  t.ok(attention.ms.tiled > 0 && attention.ms.fused > 0 && attention.ms.mma > 0, 'attention: the three paths timed')
  t.ok(attention.long.ms.kept > 0 && attention.long.ms.formedAgain > 0, 'attention: long sequences, probs kept and formed again')
  t.ok(attention.t128.T === 70 && attention.t128.ms.fused > 0 && attention.t128.ms.mma > 0, 'attention past 64 tokens: fused and mma timed')

  const step = json(out, 'bench-step.json')
  const rows = step.simcsepp as { batchSize: number; stepsPerSec: number; microBatch: number; model: string }[]
  t.same(
    rows.map((row) => [row.model, row.batchSize, row.microBatch]),
    [
      ['tiny', 2, 0],
      ['tiny', 4, 0],
      ['tiny', 8, 9],
    ],
    'step rows: B = 2, 4 whole and B = 8 in micro-batches',
  )
  t.ok(
    rows.every((row) => row.stepsPerSec > 0),
    'each step timed',
  )
  // Each variant row names its switch; the first rows are the per-op rounding, the last the fp32 operands.
  const switches = [
    'layerNormRows',
    'l2Slabs',
    'lossSplits',
    'biasSums',
    'bf16Output',
    'attentionStorage',
    'attentionProbs',
    'layerNormCopies',
    'sublayerOutput',
    'geluCopies',
  ] as const
  type Row = { batchSize: number; bf16Operands?: string; bf16Copies?: string } & Partial<Record<(typeof switches)[number], string>>
  const rowName = (c: Row) => {
    const k = switches.find((s) => c[s] !== undefined)
    return c.bf16Operands ?? (k ? `${k} ${c[k]}` : `bf16Copies ${c.bf16Copies}`)
  }
  t.same(
    step.comparisons.map((c: Row) => [c.batchSize, rowName(c)]),
    [
      [2, 'bf16Copies per op'],
      [4, 'layerNormRows scalar'],
      [4, 'l2Slabs off'],
      [4, 'lossSplits off'],
      [4, 'biasSums products'],
      [4, 'bf16Output off'],
      [4, 'attentionStorage fp32'],
      [4, 'attentionProbs keep'],
      [4, 'layerNormCopies recompute'],
      [4, 'sublayerOutput fp32'],
      [4, 'geluCopies recompute'],
      [2, 'fp32'],
      [4, 'fp32'],
    ],
    'the comparison rows: operands rounded per op, scalar LayerNorm rows, LayerNorm backwards over all rows, the losses in one run per row tile, bias sums in the products, products in fp32, attention arrays in fp32, attention probabilities kept, LayerNorm outputs recomputed, sublayer outputs in fp32, GELU outputs recomputed, bf16 products on fp32 operands',
  )
  t.match(log, /step B=4 products written in fp32: [\d.]+ steps\/s; stored in bf16: [\d.]+/, 'the bf16 output comparison')
  t.match(log, /step B=4 attention arrays in fp32: [\d.]+ steps\/s; in bf16: [\d.]+/, 'the attention storage comparison')
  t.match(
    log,
    /step B=4 LayerNorm outputs recomputed in the backward: [\d.]+ steps\/s; kept in bf16: [\d.]+/,
    'the LayerNorm copies comparison',
  )
  t.match(log, /step B=4 sublayer outputs in fp32: [\d.]+ steps\/s; in bf16: [\d.]+/, 'the sublayer output comparison')
  t.match(log, /step B=4 GELU outputs recomputed in the backward: [\d.]+ steps\/s; kept in bf16: [\d.]+/, 'the GELU copies comparison')
  t.match(log, /step B=4 bias sums in the products: [\d.]+ steps\/s; in the producers: [\d.]+/, 'the bias sums comparison')
  t.match(log, /step B=4 LayerNorm backward over all rows at once: [\d.]+ steps\/s; in L2 slabs: [\d.]+/, 'the L2 slabs comparison')
  t.match(log, /step B=4 fused losses in one run per row tile: [\d.]+ steps\/s; in runs over blocks: [\d.]+/, 'the loss runs comparison')
  t.match(log, /step B=2 operands rounded per op: [\d.]+ steps\/s; from the mirror and handoffs: [\d.]+/, 'the copies comparison')
  t.match(log, /step B=2 without CUDA graphs: [\d.]+ steps\/s; with: [\d.]+/, 'the graphs/eager comparison')
  t.same(
    step.targets.map((x: { name: string; value: number | null; why?: string }) => [x.name, x.value === null ? typeof x.why : 'number']),
    [
      ['B=2 steps/s over PyTorch eager', 'string'],
      ['B=2 steps/s over PyTorch compile', 'string'],
      ['B=4 model FLOP utilisation', 'string'],
    ],
    "the issue's three targets, each saying why it was not measured (no PyTorch; the emulator has no peak FLOP rate)",
  )
  t.equal(step.dryRun, true, 'the JSON says it is a dry run')
  t.match(log, /SKIP PyTorch baseline: simcsepp-test-no-python cannot import torch and transformers/, 'the baseline skipped, saying why')
  t.equal((log.match(/^op category +GPU ms\/step/gm) ?? []).length, 2, 'a device-time profile per batch size')

  const encode = json(out, 'bench-encode.json')
  t.match(encode.rows, [{ model: 'tiny', device: 'cuda', sentences: 12, batchSize: 4, onnxruntimePerSec: null }], 'encode row')
  t.ok(encode.rows[0].sortedPerSec > 0 && encode.rows[0].inputOrderPerSec > 0, 'SentenceEncoder on CUDA timed')
  t.ok(encode.rows[0].noGraphsSortedPerSec > 0, 'and without CUDA graphs')
  t.equal(encode.dryRun, true)
})
