// Packs simcsepp as `npm pack` would ship it, with a prebuilt addon, and installs the tarball into a fresh
// project: what a user's `npm install simcsepp` does, offline from the npm cache. Used by
// test/install.test.ts; run directly to measure install times:
//   node test/helpers/pack-install.mjs [--no-compiler] [--from-source] [--prebuilt FILE]
// --no-compiler: PATH holds only node and npm (no cmake, c++, cc, make, nvcc); --from-source: installs
// with SIMCSEPP_BUILD_FROM_SOURCE=1 (the fallback build); --prebuilt: the addon to ship (default: the
// repository's prebuilds/, else build/Release: a CPU-only build is enough to test the loading).
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const platformDir = `${process.platform}-${process.arch}`

/** The addon to ship: the repository's prebuilt when made, else the local build; null when neither exists. */
export function defaultPrebuilt() {
  for (const p of [join(root, 'prebuilds', platformDir, 'simcsepp.node'), join(root, 'build', 'Release', 'simcsepp.node')]) {
    if (existsSync(p)) return p
  }
  return null
}

/** npm's own entry script (npm-cli.js), run with this node: independent of PATH. */
function npmCli() {
  const candidates = [join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')]
  const r = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' })
  if (r.status === 0) candidates.push(join(r.stdout.trim(), 'npm', 'bin', 'npm-cli.js'))
  const found = candidates.find((p) => existsSync(p))
  if (!found) throw new Error(`npm-cli.js not found (tried ${candidates.join(', ')})`)
  return found
}

/** @param {string[]} args @param {import('node:child_process').SpawnSyncOptions} options */
function npm(args, options) {
  return spawnSync(process.execPath, [npmCli(), ...args], { ...options, encoding: 'utf8' })
}

/**
 * Copies the package's "files" and package.json into a staging folder, adds `prebuilt`, and packs it: the tarball's path.
 * @param {string} prebuilt @param {string} work @returns {string}
 */
export function pack(prebuilt, work) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const stage = join(work, 'package')
  mkdirSync(stage, { recursive: true })
  for (const f of pkg.files) {
    if (f === 'prebuilds' || !existsSync(join(root, f))) continue
    cpSync(join(root, f), join(stage, f), { recursive: true })
  }
  cpSync(join(root, 'package.json'), join(stage, 'package.json'))
  mkdirSync(join(stage, 'prebuilds', platformDir), { recursive: true })
  cpSync(prebuilt, join(stage, 'prebuilds', platformDir, 'simcsepp.node'))
  // --ignore-scripts: prepack would insist on the CUDA prebuilt, which a test need not build.
  const r = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: stage })
  if (r.status !== 0) throw new Error(`npm pack failed: ${r.stderr}`)
  return join(work, JSON.parse(r.stdout)[0].filename)
}

/**
 * A bin folder with only node, npm and sh (npm runs scripts with it): no cmake, compilers, make or nvcc on PATH.
 * @param {string} work @returns {string}
 */
export function bareBin(work) {
  const bin = join(work, 'bin')
  if (existsSync(bin)) return bin
  mkdirSync(bin, { recursive: true })
  symlinkSync(process.execPath, join(bin, 'node'))
  symlinkSync('/bin/sh', join(bin, 'sh'))
  writeFileSync(join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli()}" "$@"\n`, { mode: 0o755 })
  return bin
}

/**
 * The fresh project's package-lock.json: simcsepp from the tarball, and its dependencies at the versions
 * of this repository's lock (its entries not marked dev). With every version fixed, npm needs no registry
 * metadata, only the packages themselves, which `npm ci` here left in the cache: the install runs offline.
 * @param {string} spec
 */
function appLock(spec) {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  /** @type {Record<string, object>} */
  const packages = {
    '': { name: 'app', version: '1.0.0', dependencies: { simcsepp: spec } },
    'node_modules/simcsepp': {
      version: pkg.version,
      resolved: spec,
      hasInstallScript: true,
      license: pkg.license,
      dependencies: pkg.dependencies,
      engines: pkg.engines,
    },
  }
  for (const [path, entry] of Object.entries(lock.packages)) if (path && !entry.dev && !entry.link) packages[path] = entry
  return { name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages }
}

/**
 * Installs `tarball` into a fresh project under `work`, offline from the npm cache, with the install
 * scripts' output shown (--foreground-scripts). { app, status, output, seconds, offlineMiss }.
 * @param {string} tarball @param {string} work
 * @param {{ noCompiler?: boolean, fromSource?: boolean, ignoreScripts?: boolean }} [options]
 */
export function install(tarball, work, { noCompiler = false, fromSource = false, ignoreScripts = false } = {}) {
  const app = join(work, 'app')
  mkdirSync(app, { recursive: true })
  const spec = `file:${tarball}`
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', private: true, dependencies: { simcsepp: spec } }),
  )
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify(appLock(spec), null, 2))
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env, npm_config_update_notifier: 'false' }
  // A user's environment, not this checkout's: no SIMCSEPP_ADDON (the package must find its own addon),
  // no SIMCSEPP_CUDA=on or SIMCSEPP_WERROR from CI (they ask for a source build), no npm_ variables of
  // the `npm test` running this.
  for (const k of Object.keys(env)) {
    if (k.startsWith('SIMCSEPP_')) delete env[k]
    if (k.startsWith('npm_') && k !== 'npm_config_update_notifier' && k !== 'npm_config_cache') delete env[k]
  }
  if (noCompiler) env.PATH = bareBin(work)
  if (fromSource) env.SIMCSEPP_BUILD_FROM_SOURCE = '1'
  const start = process.hrtime.bigint()
  const flags = ['--offline', '--no-audit', '--no-fund', '--foreground-scripts', ...(ignoreScripts ? ['--ignore-scripts'] : [])]
  const r = npm(['install', ...flags], { cwd: app, env })
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const output = `${r.stdout}\n${r.stderr}`
  return { app, status: r.status, output, seconds, offlineMiss: /ENOTCACHED|offline/i.test(r.stderr) && r.status !== 0 }
}

export function work() {
  return mkdtempSync(join(tmpdir(), 'simcsepp-install-'))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const i = args.indexOf('--prebuilt')
  const prebuilt = i >= 0 ? args[i + 1] : defaultPrebuilt()
  if (!prebuilt) throw new Error('no addon to ship: build one (npm run build) or pass --prebuilt FILE')
  const dir = work()
  const tarball = pack(prebuilt, dir)
  const r = install(tarball, dir, { noCompiler: args.includes('--no-compiler'), fromSource: args.includes('--from-source') })
  process.stdout.write(r.output.trim() + '\n')
  console.log(JSON.stringify({ tarball, prebuilt, status: r.status, seconds: Number(r.seconds.toFixed(2)), app: r.app }))
}
