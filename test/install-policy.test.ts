// The install's decisions (scripts/install-policy.mjs) and the addon loader's search (lib/addon-loader.ts),
// without building or installing anything: which builds are tried in which order, what the error says
// when none loads, when the install script may take the prebuilt, and when a source build compiles CUDA.
import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { addonCandidates, loadAddon, prebuiltPath } from '../lib/addon-loader.js'
import { cudaMode, prebuiltLoads, prebuiltPath as scriptPrebuiltPath, sourceBuildReason } from '../scripts/install-policy.mjs'

const pkg = '/opt/pkg'

t.test('loader: SIMCSEPP_ADDON alone, else the local build before the prebuilt of this platform', async (t) => {
  t.same(addonCandidates(pkg, { SIMCSEPP_ADDON: 'x/y.node' }), [resolve('x/y.node')])
  t.same(addonCandidates(pkg, {}), [
    '/opt/pkg/build/Release/simcsepp.node',
    '/opt/pkg/build/Debug/simcsepp.node',
    `/opt/pkg/prebuilds/${process.platform}-${process.arch}/simcsepp.node`,
  ])
  t.equal(prebuiltPath(pkg, 'linux', 'x64'), '/opt/pkg/prebuilds/linux-x64/simcsepp.node')
  t.equal(scriptPrebuiltPath(pkg, 'linux', 'x64'), prebuiltPath(pkg, 'linux', 'x64'), 'the install script looks where the loader does')
})

t.test('loader: the first file that loads wins; otherwise one error names every file and why', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-loader-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const broken = join(dir, 'broken.node'),
    good = join(dir, 'good.node'),
    missing = join(dir, 'missing.node')
  writeFileSync(broken, '')
  writeFileSync(good, '')
  const tried: string[] = []
  const load = (p: string) => {
    tried.push(p)
    if (p === broken) throw new Error('invalid ELF header')
    return { from: p }
  }
  t.same(loadAddon([missing, broken, good], load), { from: good })
  t.same(tried, [broken, good], 'a missing file is not handed to require')

  const err = t.throws(() => loadAddon([missing, broken], load)) as Error
  t.match(err.message, 'the native addon could not be loaded')
  t.match(err.message, `tried ${missing}: not found`)
  t.match(err.message, `tried ${broken}: invalid ELF header`)
  t.match(err.message, 'SIMCSEPP_BUILD_FROM_SOURCE=1 npm rebuild simcsepp')
})

t.test('install script: takes the prebuilt only as npm install of a released package', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-policy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const install = { npm_lifecycle_event: 'install' }
  t.equal(sourceBuildReason(install, dir), null, 'npm install of the package')
  t.match(sourceBuildReason({}, dir), 'run directly')
  t.match(sourceBuildReason({ ...install, SIMCSEPP_BUILD_FROM_SOURCE: '1' }, dir), 'SIMCSEPP_BUILD_FROM_SOURCE=1')
  t.equal(sourceBuildReason({ ...install, SIMCSEPP_BUILD_FROM_SOURCE: '0' }, dir), null)
  t.match(sourceBuildReason({ ...install, SIMCSEPP_CUDA: 'emulate' }, dir), 'SIMCSEPP_CUDA is set')
  t.match(sourceBuildReason({ ...install, SIMCSEPP_NO_CUDA: '1' }, dir), 'SIMCSEPP_NO_CUDA is set')
  t.match(sourceBuildReason({ ...install, SIMCSEPP_BUILD_DIR: 'b' }, dir), 'SIMCSEPP_BUILD_DIR is set')
  mkdirSync(join(dir, '.git'))
  t.match(sourceBuildReason(install, dir), 'a git checkout')
})

t.test('install script: a prebuilt that does not load is reported, not used', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-policy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.match(prebuiltLoads(join(dir, 'none.node')), 'not found')
  writeFileSync(join(dir, 'bad.node'), 'not an ELF file')
  t.match(prebuiltLoads(join(dir, 'bad.node')), /bad\.node does not load: .*(invalid ELF header|too short)/)
})

t.test('source build: CUDA only with a driver, or when asked for', async (t) => {
  const yes = () => true,
    no = () => false
  t.same(cudaMode({}, yes), { mode: 'auto' }, 'a driver: nvcc compiles the kernels when found')
  const narrowed = cudaMode({}, no)
  t.equal(narrowed.mode, 'off', 'no driver: the CPU backend only')
  t.match(narrowed.note, 'SIMCSEPP_CUDA=on')
  t.same(cudaMode({ SIMCSEPP_CUDA: 'on' }, no), { mode: 'on' }, 'on: compiled without a driver (CI, the prebuilt)')
  t.same(cudaMode({ SIMCSEPP_CUDA: 'emulate' }, no), { mode: 'emulate' })
  t.same(cudaMode({ SIMCSEPP_CUDA: 'off' }, yes), { mode: 'off' })
  t.same(cudaMode({ SIMCSEPP_NO_CUDA: '1', SIMCSEPP_CUDA: 'on' }, yes), { mode: 'off' }, 'SIMCSEPP_NO_CUDA=1 wins')
  t.same(cudaMode({ SIMCSEPP_CUDA: 'yes' }, yes), { error: "SIMCSEPP_CUDA must be auto, on, off or emulate, not 'yes'" })
  let asked = false
  cudaMode({ SIMCSEPP_CUDA: 'on' }, () => (asked = true))
  t.notOk(asked, 'the driver is only looked for when it matters')
})

t.test('binding.gyp (the build without cmake) compiles what CMakeLists.txt compiles for the CPU, with its float flags', async (t) => {
  const { readdirSync, readFileSync } = await import('node:fs')
  const root = join(import.meta.dirname, '..')
  const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')) as {
    targets: { sources: string[]; cflags_cc: string[] }[]
  }
  // CMakeLists.txt: native/*.cpp native/cpu/*.cpp native/distributed/*.cpp, with native/cuda_stub.cpp when CUDA is off.
  const cmake = ['native', 'native/cpu', 'native/distributed'].flatMap((d) =>
    readdirSync(join(root, d))
      .filter((f) => f.endsWith('.cpp'))
      .map((f) => `${d}/${f}`),
  )
  t.same([...gyp.targets[0].sources].sort(), cmake.sort())
  t.ok(
    gyp.targets[0].cflags_cc.includes('-ffp-contract=off'),
    'no FMA contraction: the CPU reference computes the same bits as the cmake build',
  )
  // The cmake build's float flags, all of them: without -fno-trapping-math GELU stays scalar on AVX2.
  const cmakeFlags = /-O3 -Wall -Wextra -fexceptions ([^>]*)>/.exec(readFileSync(join(root, 'CMakeLists.txt'), 'utf8'))![1].split(' ')
  t.same(
    cmakeFlags.filter((f) => f.startsWith('-f') && f !== '-fexceptions'),
    ['-ffp-contract=off', '-fno-math-errno', '-fno-trapping-math'],
  )
  for (const f of cmakeFlags) t.ok(gyp.targets[0].cflags_cc.includes(f), `binding.gyp has ${f} too`)
})
