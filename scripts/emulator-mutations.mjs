#!/usr/bin/env node
// Proves that the host emulator catches the kernel bugs it exists for, on the real kernels: each mutation
// (one __syncthreads() deleted from kernels/infonce.cu or from the tile loop it uses, or one tile bound
// off by one) is applied, the emulated flavour rebuilt, and the fused losses run at shapes that cross
// tile boundaries; the mutation counts as caught when the op throws the expected report. The source file
// is restored after every mutation. Needs a configured build-emulate/ (npm run test:emulated once).
// Usage: node scripts/emulator-mutations.mjs [filter]   (minutes: one rebuild per mutation; filter selects
// mutations whose label contains it)
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const addon = join(root, 'build-emulate', 'Release', 'simcsepp.node')

/** @type {{ file: string, line: number, from: string, to: string, expect: RegExp, what: string }[]} */
const mutations = []
for (const file of ['kernels/infonce.cu', 'kernels/tile_gemm.cuh']) {
  const lines = readFileSync(join(root, file), 'utf8').split('\n')
  lines.forEach((text, i) => {
    // infonce.cu's barriers, and the tile loop infonce.cu runs (dot_tile, the first two in tile_gemm.cuh).
    if (!/^\s*__syncthreads\(\);/.test(text)) return
    if (file.endsWith('tile_gemm.cuh') && mutations.filter((m) => m.file === file).length >= 2) return
    mutations.push({ file, line: i + 1, from: '__syncthreads();', to: ';', expect: /race|divergent|deadlock/, what: 'barrier deleted' })
  })
}
mutations.push({
  file: 'kernels/tile_gemm.cuh',
  line: 0,
  from: 'if (gm < mEnd && gk < kEnd) v = f(src[gm * ld + gk], m, gk);',
  to: 'if (gm <= mEnd && gk < kEnd) v = f(src[gm * ld + gk], m, gk);',
  expect: /out-of-bounds/,
  what: 'tile row bound off by one (load_kcontig)',
})
mutations.push({
  file: 'kernels/infonce.cu',
  line: 0,
  from: 'const int64_t rows = min(static_cast<int64_t>(kTile), P.n - r0);',
  to: 'const int64_t rows = min(static_cast<int64_t>(kTile), P.n - r0 + 1);',
  expect: /out-of-bounds/,
  what: 'positive-gradient row bound off by one',
})

const probe = `
import { Tensor, losses } from ${JSON.stringify(join(root, 'dist', 'index.js'))}
import { lossViews } from ${JSON.stringify(join(root, 'test', 'helpers', 'parity.mjs'))}
for (const [n, d] of [[100, 48], [130, 100], [65, 33]]) {
  const z = lossViews(n, d).map((v) => Tensor.from(v, [n, d]).to('cuda'))
  const runs = [
    () => losses.simcse(z[0], z[1]),
    () => losses.simcse(z[0], z[1], { hardNegatives: z[2] }),
    () => losses.offDropout(z[0], z[1], z[2]),
  ]
  for (const run of runs) {
    try { run() } catch (e) { console.log('FAULT ' + e.message); process.exit(0) }
  }
}
console.log('NO FAULT')
`

function rebuild() {
  const r = spawnSync('cmake', ['--build', join(root, 'build-emulate'), '--parallel', '2'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`)
}

const filter = process.argv[2] ?? ''
let caught = 0
let tried = 0
for (const m of mutations) {
  const path = join(root, m.file)
  const original = readFileSync(path, 'utf8')
  let mutated
  if (m.line > 0) {
    const lines = original.split('\n')
    lines[m.line - 1] = lines[m.line - 1].replace(m.from, m.to)
    mutated = lines.join('\n')
  } else {
    mutated = original.replace(m.from, m.to)
  }
  if (mutated === original) throw new Error(`mutation did not apply: ${m.file} ${m.from}`)
  const label = `${m.file}${m.line > 0 ? `:${m.line}` : ''} ${m.what}`
  if (!label.includes(filter)) continue
  tried += 1
  try {
    writeFileSync(path, mutated)
    rebuild()
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
      encoding: 'utf8',
      env: { ...process.env, SIMCSEPP_ADDON: addon },
    })
    const out = `${r.stdout}${r.stderr}`.trim()
    const ok = m.expect.test(out) && out.startsWith('FAULT')
    caught += ok ? 1 : 0
    console.log(`${ok ? 'caught ' : 'MISSED '} ${label}\n    ${out.split('\n')[0].slice(0, 400)}`)
  } finally {
    writeFileSync(path, original)
  }
}
rebuild()
console.log(`${caught} of ${tried} mutations caught`)
process.exit(caught === tried ? 0 : 1)
