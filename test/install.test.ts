// The package as users install it: `npm pack`'s tarball, with a prebuilt addon, installed into a fresh
// project with no compiler, cmake or nvcc on PATH (offline, from the npm cache). The install script
// must take the prebuilt instead of building; require() and import() of the installed package must
// give the same API and encode the same vectors as this checkout; without any addon the loader must say
// what it tried. Skipped when dist/ is not built, no addon exists to ship, or npm cannot install offline.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SentenceEncoder } from '../lib/index.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'
import { bareBin, defaultPrebuilt, install, pack, root, work } from './helpers/pack-install.mjs'

const prebuilt = defaultPrebuilt()
const skip = !existsSync(join(root, 'dist', 'index.cjs'))
  ? 'dist/ is not built (npx tsc -p tsconfig.json && node scripts/build-cjs.mjs)'
  : !prebuilt
    ? 'no addon to ship (npm run build, or npm run build:prebuilt)'
    : false

const texts = ['the cat sat on the mat', 'a dog runs fast', '']

// A CommonJS and an ES module user of the installed package; each prints one JSON line.
const CJS_USER = `const s = require('simcsepp')
const keys = Object.keys(s).sort()
const status = s.cudaStatus()
s.SentenceEncoder.load(process.argv[2], { device: 'cpu' }).then(async (enc) => {
  const v = await enc.encode(JSON.parse(process.argv[3]))
  await enc.close()
  console.log(JSON.stringify({ keys, status, vectors: v.map((x) => Array.from(x)) }))
})
`
const ESM_USER = `import * as s from 'simcsepp'
const enc = await s.SentenceEncoder.load(process.argv[2], { device: 'cpu' })
const v = await enc.encode(JSON.parse(process.argv[3]))
await enc.close()
console.log(JSON.stringify({ keys: Object.keys(s).sort(), status: s.cudaStatus(), vectors: v.map((x) => Array.from(x)) }))
`

t.test('packed package: installs without a compiler from the prebuilt, and works from CommonJS and ESM', { skip }, async (t) => {
  const dir = work()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const tarball = pack(prebuilt!, dir)
  const r = install(tarball, dir, { noCompiler: true })
  if (r.offlineMiss)
    return t.skip(`npm cannot install offline here (a dependency is not in the npm cache): ${r.output.slice(-300)}`, () => {})
  t.equal(r.status, 0, `npm install succeeded:\n${r.output.slice(-2000)}`)
  t.match(
    r.output,
    `simcsepp: using the prebuilt addon ${join(r.app, 'node_modules', 'simcsepp', 'prebuilds')}`,
    'the install script took the prebuilt',
  )
  t.notMatch(r.output, /cmake-js|node-gyp|Building CXX/, 'and built nothing')
  t.comment(`install of the packed package without a compiler on PATH: ${r.seconds.toFixed(1)} s (${prebuilt})`)

  const model = await saveTinyModel({ seed: 3 })
  t.teardown(() => rmSync(model, { recursive: true, force: true }))
  const enc = await SentenceEncoder.load(model, { device: 'cpu' })
  const want = await enc.encode(texts)
  await enc.close()

  const env: NodeJS.ProcessEnv = { ...process.env, PATH: join(dir, 'bin'), NODE_OPTIONS: '' }
  delete env.SIMCSEPP_ADDON
  const runUser = (name: string, code: string) => {
    const file = join(r.app, name)
    writeFileSync(file, code)
    const out = spawnSync(process.execPath, [file, model, JSON.stringify(texts)], { cwd: r.app, env, encoding: 'utf8' })
    t.equal(out.status, 0, `${name} ran: ${out.stderr}`)
    return JSON.parse(out.stdout) as { keys: string[]; status: { compiled: boolean; available: boolean }; vectors: number[][] }
  }
  const cjs = runUser('user.cjs', CJS_USER)
  const esm = runUser('user.mjs', ESM_USER)
  t.same(cjs.keys, esm.keys, `require() and import() export the same ${esm.keys.length} names`)
  t.ok(esm.keys.includes('SentenceEncoder') && esm.keys.includes('searchVectors'), 'among them SentenceEncoder and searchVectors')
  t.type(cjs.status.compiled, 'boolean', 'cudaStatus() is synchronous from CommonJS')
  t.same(cjs.status, esm.status, 'and says the same as from ESM')
  for (const [label, got] of [
    ['CommonJS', cjs],
    ['ESM', esm],
  ] as const) {
    let worst = 0
    got.vectors.forEach((v, i) => v.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - want[i][j])))))
    t.ok(worst <= 1e-6, `${label}: the installed package's vectors equal this checkout's (max |diff| ${worst.toExponential(1)})`)
  }

  // Without any addon, the loader names each place it looked.
  renameSync(join(r.app, 'node_modules', 'simcsepp', 'prebuilds'), join(r.app, 'prebuilds-away'))
  const none = spawnSync(process.execPath, ['-e', "require('simcsepp')"], { cwd: r.app, env, encoding: 'utf8' })
  t.not(none.status, 0, 'require fails without an addon')
  t.match(none.stderr, /the native addon could not be loaded/)
  t.match(none.stderr, /tried .*build\/Release\/simcsepp\.node: not found/)
  t.match(
    none.stderr,
    `tried ${join(r.app, 'node_modules', 'simcsepp', 'prebuilds', `${process.platform}-${process.arch}`, 'simcsepp.node')}: not found`,
  )
  t.match(none.stderr, /SIMCSEPP_BUILD_FROM_SOURCE=1/, 'and says how to build one')
})

t.test('packed package: works when npm does not run install scripts (--ignore-scripts)', { skip }, async (t) => {
  const dir = work()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const tarball = pack(prebuilt!, dir)
  bareBin(dir)
  const r = install(tarball, dir, { ignoreScripts: true })
  if (r.offlineMiss) return t.skip('npm cannot install offline here (a dependency is not in the npm cache)', () => {})
  t.equal(r.status, 0, r.output.slice(-2000))
  t.notMatch(r.output, /using the prebuilt addon/, 'the install script did not run')
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: join(dir, 'bin'), NODE_OPTIONS: '' }
  delete env.SIMCSEPP_ADDON
  const out = spawnSync(process.execPath, ['-e', "console.log(typeof require('simcsepp').cudaStatus().compiled)"], {
    cwd: r.app,
    env,
    encoding: 'utf8',
  })
  t.equal(out.stdout.trim(), 'boolean', `the loader found the prebuilt by itself: ${out.stderr}`)
})
