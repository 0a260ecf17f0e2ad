// The CPU SGEMM through the addon (native/cpu/gemm.cpp): every form against a float64 reference at sizes that
// leave partial micro-tiles and cross the cache blocks, the same bits at 1 and 2 threads, and bench gemm's
// shape lists. native/cpu/dev/gemm_check.cpp checks the kernels one by one over many more sizes.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { addon } from '../lib/native.js'
import { Tensor, nativeOf } from '../lib/tensor.js'
import { gemmBenchInfo, gemmSquareShapes, gemmStepShapes } from '../lib/bench/gemm.js'

function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = s / 4294967296 - 0.5
  }
  return a
}

interface Product {
  m: number
  n: number
  k: number
  ta: boolean
  tb: boolean
  alpha: number
  beta: number
}

function operands(p: Product) {
  return { a: random(p.m * p.k, 1 + p.m), b: random(p.k * p.n, 2 + p.n), c: random(p.m * p.n, 3 + p.k) }
}

function ours(p: Product): Float32Array {
  const o = operands(p)
  const a = Tensor.from(o.a, p.ta ? [p.k, p.m] : [p.m, p.k])
  const b = Tensor.from(o.b, p.tb ? [p.n, p.k] : [p.k, p.n])
  const c = Tensor.from(o.c, [p.m, p.n])
  addon.gemm(nativeOf(c, 'c'), nativeOf(a, 'a'), nativeOf(b, 'b'), p.ta, p.tb, p.alpha, p.beta, false)
  const out = c.toFloat32Array()
  for (const x of [a, b, c]) x.dispose()
  return out
}

function reference(p: Product): Float64Array {
  const { a, b, c } = operands(p)
  const r = new Float64Array(p.m * p.n)
  for (let i = 0; i < p.m; i++)
    for (let j = 0; j < p.n; j++) {
      let s = 0
      for (let k = 0; k < p.k; k++) s += a[p.ta ? k * p.m + i : i * p.k + k] * b[p.tb ? j * p.k + k : k * p.n + j]
      r[i * p.n + j] = p.alpha * s + p.beta * c[i * p.n + j]
    }
  return r
}

const products: Product[] = []
for (const [m, n, k] of [
  [97, 65, 129], // partial tiles everywhere, one thread
  [301, 33, 1025], // K over several blocks (beta applies to the first only); one row rectangle per thread
  [29, 517, 200], // one column rectangle per thread
  [200, 200, 600], // rectangles would be under 128 wide: B packed once per K block by both threads, shared
  [2100, 40, 70], // rows of C in rectangles, one per thread at a time
  [20, 2100, 70], // columns of C in rectangles
  [1, 300, 300],
  [300, 1, 300],
])
  for (const [ta, tb] of [
    [false, true],
    [false, false],
    [true, false],
    [true, true],
  ])
    products.push({ m, n, k, ta, tb, alpha: 1, beta: 0 }, { m, n, k, ta, tb, alpha: -0.5, beta: 1 })

if (process.env.SIMCSEPP_GEMM_TEST_CHILD) {
  // Child mode (the thread-count test below): print every product's bits.
  const bits = products.map((p) => Buffer.from(ours(p).buffer).toString('base64'))
  process.stdout.write(JSON.stringify(bits))
} else {
  t.test('sgemm matches a float64 reference in every form (relative error < 1e-5)', async (t) => {
    for (const p of products) {
      const got = ours(p),
        want = reference(p)
      let err = 0,
        scale = 0
      for (let i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(got[i] - want[i]))
        scale = Math.max(scale, Math.abs(want[i]))
      }
      t.ok(err / scale < 1e-5, `${p.m}x${p.n}x${p.k} ta=${p.ta} tb=${p.tb} beta=${p.beta}: ${(err / scale).toExponential(2)}`)
    }
  })

  t.test('sgemm gives the same bits on 1 and 2 threads', async (t) => {
    const self = fileURLToPath(import.meta.url)
    const run = (threads: string) => {
      const r = spawnSync(process.execPath, [...process.execArgv, self], {
        encoding: 'utf8',
        env: { ...process.env, SIMCSEPP_GEMM_TEST_CHILD: '1', SIMCSEPP_NUM_THREADS: threads, TAP: '0' },
        maxBuffer: 64 << 20,
      })
      t.equal(r.status, 0, r.stderr)
      return JSON.parse(r.stdout) as string[]
    }
    const one = run('1'),
      two = run('2')
    t.equal(one.length, products.length)
    products.forEach((p, i) => t.equal(one[i], two[i], `${p.m}x${p.n}x${p.k} ta=${p.ta} tb=${p.tb} beta=${p.beta}`))
  })

  t.test("bench gemm's shapes: the step's products and the square set", async (t) => {
    // mini: H = 256, I = 1024 on 3·64·32 rows; forward rows·Wᵀ, input gradient dout·W, weight gradient doutᵀ·inp.
    const step = gemmStepShapes(256, 1024, 6144)
    t.equal(step.length, 12)
    t.same(step[0], { m: 6144, n: 768, k: 256, form: 'A·Bᵀ', role: 'qkv forward' })
    t.same(step[7], { m: 6144, n: 1024, k: 256, form: 'A·B', role: 'mlp down input grad' })
    t.same(step[10], { m: 1024, n: 256, k: 6144, form: 'Aᵀ·B', role: 'mlp up weight grad' })
    // Their FLOPs are a third of the step's product FLOPs per layer (forward of 4 layers x 3 passes = 116 GFLOP).
    const flops = step.reduce((s, x) => s + 2 * x.m * x.n * x.k, 0)
    t.equal(flops * 4, 115_964_116_992)
    t.equal(gemmSquareShapes([2048], [768, 3072]).length, 12)
  })

  t.test("gemm's precision 'bf16' is the linear layers' bf16 product; refused where it does not apply", async (t) => {
    const [m, n, k] = [300, 70, 129]
    const a = Tensor.from(random(m * k, 21), [m, k]),
      w = Tensor.from(random(n * k, 22), [n, k])
    const c = Tensor.zeros([m, n]),
      out = Tensor.zeros([m, n])
    addon.gemm(nativeOf(c, 'c'), nativeOf(a, 'a'), nativeOf(w, 'b'), false, true, 1, 0, false, 'bf16')
    const { linearForward } = await import('../lib/ops.js')
    linearForward(out, a, w, null, 'bf16')
    const bytes = (x: Tensor) => Buffer.from(x.toFloat32Array().buffer)
    t.ok(bytes(c).equals(bytes(out)), 'bit for bit')
    const fp32 = Tensor.zeros([m, n])
    addon.gemm(nativeOf(fp32, 'c'), nativeOf(a, 'a'), nativeOf(w, 'b'), false, true, 1, 0, false)
    t.notOk(bytes(c).equals(bytes(fp32)), 'not the fp32 product')
    t.throws(() => addon.gemm(nativeOf(c, 'c'), nativeOf(a, 'a'), nativeOf(w, 'b'), false, true, 1, 0, true, 'bf16'), /precision 'bf16'/)
    t.throws(
      () => addon.gemm(nativeOf(c, 'c'), nativeOf(a, 'a'), nativeOf(w, 'b'), false, true, 1, 0, false, 'fp16' as 'bf16'),
      /precision to be 'fp32' or 'bf16'/,
    )
  })

  t.test('bench gemm --bf16: a bf16 column and its speed over fp32 for every product', async (t) => {
    const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
    const r = spawnSync(process.execPath, [cli, 'bench', 'gemm', '--model', 'tiny', '--bf16', '--seconds', '0.01', '--json'], {
      encoding: 'utf8',
    })
    t.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { bf16Kernel: string; rows: { oursGflops: number; bf16Gflops: number; bf16Speedup: number }[] }
    t.equal(out.rows.length, 12)
    t.ok(
      out.rows.every((row) => row.bf16Gflops > 0 && Math.abs(row.bf16Speedup - row.bf16Gflops / row.oursGflops) < 1e-9),
      'bf16 GFLOP/s and the speed-up in every row',
    )
    t.match(out.bf16Kernel, /^(amx|avx512bf16|rounded while packed)$/)
  })

  t.test('bench gemm unsets OPENBLAS_CORETYPE for the system BLAS and restores it', async (t) => {
    const before = process.env.OPENBLAS_CORETYPE
    process.env.OPENBLAS_CORETYPE = 'Haswell'
    const info = gemmBenchInfo()
    t.equal(process.env.OPENBLAS_CORETYPE, 'Haswell', 'restored afterwards')
    if (before === undefined) delete process.env.OPENBLAS_CORETYPE
    else process.env.OPENBLAS_CORETYPE = before
    t.equal(info.coreTypeUnset, 'Haswell')
    t.match(info.kernel, /^(avx512|avx2|generic)$/)
    if (info.systemBlas && /openblas/i.test(info.systemBlas)) {
      t.type(info.systemBlasCore, 'string')
      // With Haswell still set, OpenBLAS would have loaded its AVX2 kernels on this AVX-512 machine.
      if (info.kernel === 'avx512') t.not(info.systemBlasCore!.toLowerCase(), 'haswell')
    }
  })

  // linearBackward's dbias (the column sums of dout) comes from the weight gradient's packed dout^T panels on the
  // fp32 packed path, and from a pass of its own otherwise (bf16, small products). Every way of splitting the product
  // (row rectangles, column rectangles, one block shared by the threads, several N blocks) must count each element of
  // dout exactly once.
  t.test('linearBackward: dbias is the column sums of dout however the weight gradient is split', async (t) => {
    const { linearBackward } = await import('../lib/ops.js')
    // [R, C, OC]: the weight gradient is [OC, C] with K = R.
    const shapes: [number, number, number, string][] = [
      [5, 7, 3, 'small (unpacked)'],
      [200, 200, 600, 'row rectangles'],
      [200, 600, 200, 'column rectangles'],
      [2000, 200, 200, 'one block shared by the threads'],
      [700, 1100, 30, 'two N blocks'],
    ]
    for (const [R, C, OC, what] of shapes)
      for (const precision of ['fp32', 'bf16'] as const) {
        const dout = random(R * OC, R + OC)
        const want = new Float64Array(OC).fill(0.5)
        for (let r = 0; r < R; r++) for (let o = 0; o < OC; o++) want[o] += dout[r * OC + o]
        const db = Tensor.from(new Float32Array(OC).fill(0.5), [OC])
        linearBackward(
          null,
          Tensor.zeros([OC, C]),
          db,
          Tensor.from(dout, [R, OC]),
          Tensor.from(random(R * C, C), [R, C]),
          Tensor.from(random(OC * C, 3), [OC, C]),
          false,
          precision,
        )
        const got = db.toFloat32Array()
        const err = Math.max(...Array.from(got, (g, o) => Math.abs(g - want[o]) / Math.max(1, Math.abs(want[o]))))
        t.ok(err < 1e-6, `${what}, ${precision}: within ${err.toExponential(1)} of the float64 sums`)
      }
  })
}
