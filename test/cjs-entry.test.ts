// The CommonJS entry (dist/index.cjs, scripts/build-cjs.mjs) against the ESM entry, each from a fresh
// child process: the same export names, the same objects (one module graph), synchronous cudaStatus(),
// the same search results; and on a Node.js that cannot require() ES modules, an Error that says so.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')
const skip = existsSync(join(root, 'dist', 'index.cjs'))
  ? false
  : 'dist/ is not built (npx tsc -p tsconfig.json && node scripts/build-cjs.mjs)'
const env = { ...process.env, NODE_OPTIONS: '' }

// Prints what each entry offers: names, cudaStatus() as returned (a Promise would print {}), a search.
const REPORT = `(s) => {
  const status = s.cudaStatus()
  const corpus = [[1, 0, 0], [0.6, 0.8, 0], [0, 0, 2], [-1, 0.1, 0]]
  const hits = s.searchVectors([[1, 0.1, 0], [0, 0.2, 1]], corpus, { topK: 2 })
  return JSON.stringify({ keys: Object.keys(s).sort(), status, isPromise: status instanceof Promise, hits })
}`

function node(args: string[]) {
  return spawnSync(process.execPath, args, { cwd: root, env, encoding: 'utf8' })
}

t.test("require('simcsepp') and import('simcsepp') give the same API, from fresh processes", { skip }, async (t) => {
  const cjs = node(['-e', `console.log((${REPORT})(require('simcsepp')))`])
  const esm = node(['--input-type=module', '-e', `import * as s from 'simcsepp'; console.log((${REPORT})(s))`])
  t.equal(cjs.status, 0, cjs.stderr)
  t.equal(esm.status, 0, esm.stderr)
  const a = JSON.parse(cjs.stdout),
    b = JSON.parse(esm.stdout)
  t.same(a.keys, b.keys, `the same ${b.keys.length} export names`)
  t.ok(b.keys.length > 20, 'all of them, not a few wrappers')
  t.equal(a.isPromise, false, 'cudaStatus() is synchronous from CommonJS')
  t.same(a.status, b.status)
  t.same(a.hits, b.hits, 'searchVectors gives the same hits')
  t.same(
    b.hits.map((h: { indices: number[] }) => h.indices),
    [
      [0, 1],
      [2, 1],
    ],
    'and the right ones (cosine: [1,.1,0] is nearest [1,0,0], then [.6,.8,0]; [0,.2,1] nearest [0,0,2])',
  )
})

t.test('one module graph: the classes from require() are those of import()', { skip }, async (t) => {
  const code = `import { createRequire } from 'node:module'
const require = createRequire(process.cwd() + '/')
const c = require('simcsepp'), e = await import('simcsepp')
const same = Object.keys(e).filter((k) => c[k] === e[k]).length
const x = c.Tensor.from(new Float32Array([1, 2]), [2])
console.log(JSON.stringify({ same, total: Object.keys(e).length, instance: x instanceof e.Tensor, legacy: (await c.import()) === e }))`
  const r = node(['--input-type=module', '-e', code])
  t.equal(r.status, 0, r.stderr)
  const o = JSON.parse(r.stdout)
  t.equal(o.same, o.total, 'every export is the identical object')
  t.ok(o.instance, 'a Tensor made through require() is an instance of the ESM Tensor')
  t.ok(o.legacy, "the former facade's require('simcsepp').import() still resolves to the namespace")
})

t.test('a Node.js without require(esm): the error names the versions that have it', { skip }, async (t) => {
  const r = node(['--no-experimental-require-module', '-e', "require('simcsepp')"])
  if (/bad option/.test(r.stderr)) return t.skip('this Node.js has no --no-experimental-require-module', () => {})
  t.not(r.status, 0)
  t.match(r.stderr, /simcsepp: require\('simcsepp'\) needs a Node\.js that can require\(\) ES modules \(>= 20\.19 or >= 22\.12/)
  t.match(r.stderr, "import('simcsepp')")
})
