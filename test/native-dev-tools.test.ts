// The standalone C++ tools in native/cpu/dev/ (not part of the addon, so no other build compiles them): each is
// built with the g++ command its header comment documents, so that the comment and the sources stay in step, and
// run. gemm_check --check-only --quick checks every micro-kernel this CPU has against a double-precision reference
// over many more sizes than test/gemm.test.ts (it exits 1 on a mismatch); column_sums_check is a benchmark, run
// once to see it work.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const hasGpp = spawnSync('g++', ['--version']).status === 0
const dir = mkdtempSync(join(tmpdir(), 'simcsepp-dev-tools-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/** The g++ arguments of the build command in a tool's header comment, with its output moved into `dir`. */
function documentedBuild(source: string, name: string): string[] {
  const lines = readFileSync(source, 'utf8').split('\n')
  const start = lines.findIndex((l) => /^\/\/\s+g\+\+ /.test(l))
  if (start < 0) throw new Error(`${source}: no g++ line in its header comment`)
  const words: string[] = []
  for (let i = start; i < lines.length && lines[i].startsWith('//'); i++) {
    words.push(...lines[i].slice(2).trim().split(/\s+/))
    if (words.includes('-o')) break
  }
  const out = words.indexOf('-o')
  if (words[0] !== 'g++' || out < 0 || words[out + 1] !== name) throw new Error(`${source}: expected "g++ ... -o ${name}"`)
  words[out + 1] = join(dir, name)
  return words.slice(1)
}

for (const [name, run] of [
  ['gemm_check', ['--check-only', '--quick']],
  ['column_sums_check', ['--reps', '1']],
] as const) {
  t.test(`native/cpu/dev/${name}.cpp: builds as documented and runs`, { skip: hasGpp ? false : 'no g++' }, async (t) => {
    const source = `native/cpu/dev/${name}.cpp`
    const build = spawnSync('g++', documentedBuild(source, name), { encoding: 'utf8' })
    t.equal(build.status, 0, `g++ ${source}: ${build.stderr}`)
    if (build.status !== 0) return
    const r = spawnSync(join(dir, name), run, { encoding: 'utf8', env: { ...process.env, SIMCSEPP_NUM_THREADS: '2' } })
    t.equal(r.status, 0, `${name} ${run.join(' ')}: ${r.stdout.slice(-2000)}${r.stderr}`)
    if (name === 'gemm_check') t.match(r.stdout, /kernel generic\s+worst rel err/, 'the portable kernel was checked')
  })
}
