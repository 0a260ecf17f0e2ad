// `simcsepp bench search`: its JSON (three ways, exact search the baseline, each index's bytes from its shape, the
// kernels named), its table, and its usage errors. The timings themselves are the benchmark's to report, not a test's.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cli, needsCli } from './helpers/train-corpus.js'

const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'bench', 'search', ...args], { encoding: 'utf8' })

t.test('bench search: exact, binary and rescored binary search over one corpus', needsCli, async (t) => {
  const r = run('--corpus', '3000', '--dim', '100', '--queries', '3', '--top-k', '5', '--rescore', '2', '--repeats', '3', '--json')
  t.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.match(out, { benchmark: 'search', corpus: 3000, dim: 100, queries: 3, topK: 5, rescore: 2 })
  t.ok(['avx512', 'popcnt', 'generic'].includes(out.hammingKernel), out.hammingKernel)
  t.same(
    out.rows.map((x: { search: string }) => x.search),
    ['exact float32', 'binary', 'binary, rescore 2'],
  )
  t.same(
    out.rows.map((x: { indexBytes: number }) => x.indexBytes),
    [3000 * 100 * 4, 3000 * 13, 3000 * 13],
    'float32 rows; 100 signs in 13 bytes',
  )
  t.equal(out.rows[0].speedup, 1, 'exact search is the baseline')
  for (const x of out.rows) t.ok(x.medianMs > 0 && Number.isFinite(x.speedup), `${x.search}: ${x.medianMs} ms`)
  const table = run('--corpus', '500', '--dim', '16', '--repeats', '1')
  t.equal(table.status, 0, table.stderr)
  t.match(table.stdout, /kernels: cosine \w+, Hamming \w+\n\nsearch\s+ms \/ batch\s+speed\s+index MB\n/)
  const bad = run('--rescore', '0')
  t.equal(bad.status, 2)
  t.match(bad.stderr, /--rescore must be an integer of at least 1 \(got 0\)/)
})
