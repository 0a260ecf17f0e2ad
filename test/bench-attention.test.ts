// `simcsepp bench attention`: the FLOPs it divides by, every path of a device with the probabilities kept and formed
// again, the rows of paths that would hand a shape to another path (not timed under their names), and the CLI.
// Speed itself is never asserted (shared, noisy machines): only that the rows are well formed.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { attentionFlops, benchAttention, type AttentionBenchRow } from '../lib/bench/attention.js'
import { cudaStatus } from '../lib/index.js'

t.test('attentionFlops: six T x T x HS products a head, 2 FLOPs a multiply-add', async (t) => {
  // B = 192, T = 32, 12 heads of 64: 12 * 192 * 12 * 32^2 * 64 = 1,811,939,328.
  t.equal(attentionFlops(192, 32, 12, 64), 1_811_939_328)
})

/** Each measured row: positive ms, its FLOP/s from the same ms, its speed against the first row of its group. */
function wellFormed(t: Test, rows: AttentionBenchRow[]) {
  for (const r of rows.filter((r) => r.ms > 0)) {
    const what = `${r.device} ${r.path} T=${r.seqLen} ${r.probs}`
    t.ok(Number.isFinite(r.ms), `${what}: ${r.ms} ms`)
    t.ok(Math.abs(r.tflops - attentionFlops(r.batch, r.seqLen, r.heads, r.headSize) / r.ms / 1e9) <= 1e-9 * r.tflops, `${what}: FLOP/s`)
    const first = rows.find((x) => x.device === r.device && x.seqLen === r.seqLen && x.probs === r.probs && x.ms > 0)!
    t.ok(Math.abs(r.speedup - first.ms / r.ms) <= 1e-12 * r.speedup, `${what}: speed against ${first.path}`)
  }
}

t.test('the CPU: fp32 and bf16, probabilities kept and formed, every row measured', async (t) => {
  const rows = benchAttention({ batch: 3, seqLens: [5, 9], heads: 2, headSize: 4, devices: ['cpu'], seconds: 0.01, log: () => {} })
  t.same(
    rows.map((r) => `${r.path} ${r.seqLen} ${r.probs}`),
    ['5 kept', '5 formed', '9 kept', '9 formed'].flatMap((g) => {
      const [T, probs] = g.split(' ')
      return [`cpu fp32 ${T} ${probs}`, `cpu bf16 ${T} ${probs}`]
    }),
  )
  t.same(
    rows.filter((r) => r.note),
    [],
    'no path refused',
  )
  wellFormed(t, rows)
  t.equal(process.env.SIMCSEPP_ATTENTION, undefined, 'SIMCSEPP_ATTENTION left as it was')
})

const status = cudaStatus()
t.test(
  'CUDA: tiled, fused and tensor cores, each where it runs the shape',
  { skip: status.available ? false : `CUDA unavailable (${status.reason})` },
  async (t) => {
    // T = 8: every path (the fused kernels only with the probabilities kept: their backward cannot form them);
    // T = 129: the tiled path alone (past the fused kernels' and the tensor cores' 128 tokens).
    const rows = benchAttention({ batch: 2, seqLens: [8, 129], heads: 1, headSize: 8, devices: ['cuda'], seconds: 0.01, log: () => {} })
    const measured = rows.filter((r) => r.ms > 0).map((r) => `${r.path} ${r.seqLen} ${r.probs}`)
    t.same(measured, [
      'tiled 8 kept',
      'fused 8 kept',
      'tensor cores 8 kept',
      'tiled 8 formed',
      'tensor cores 8 formed',
      'tiled 129 kept',
      'tiled 129 formed',
    ])
    const refused = rows.filter((r) => r.note).map((r) => `${r.path} ${r.seqLen} ${r.probs}: ${r.note}`)
    t.equal(refused.length, 5)
    t.match(refused.join('\n'), /fused 8 formed: takes up to 128 tokens and heads of 128 columns, with the probabilities kept/)
    t.match(refused.join('\n'), /tensor cores 129 kept: takes up to 128 tokens and heads of up to 64 columns/)
    wellFormed(t, rows)
  },
)

const cli = join(process.cwd(), 'dist', 'cli.js')
t.test('bench attention --json, and its flags checked', { skip: existsSync(cli) ? false : 'dist/cli.js not built' }, async (t) => {
  const args = ['bench', 'attention', '--batch', '2', '--seq-lens', '6', '--heads', '1', '--head-size', '4', '--device', 'cpu']
  const r = spawnSync(process.execPath, [cli, ...args, '--seconds', '0.01', '--json'], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { benchmark: string; rows: AttentionBenchRow[] }
  t.equal(out.benchmark, 'attention')
  t.equal(out.rows.length, 4)
  t.ok(out.rows.every((x) => x.ms > 0))
  for (const [flag, value, message] of [
    ['--seq-lens', '0', /--seq-lens must be integers in \[1, 4096\]/],
    ['--heads', '1.5', /--heads must be an integer in \[1, 256\]/],
    ['--seconds', '0', /--seconds must be > 0/],
  ] as const) {
    const bad = spawnSync(process.execPath, [cli, ...args, flag, value], { encoding: 'utf8' })
    t.equal(bad.status, 2, `${flag} ${value}`)
    t.match(bad.stderr, message)
  }
})
