#!/usr/bin/env node
// npm run build:prebuilt: makes the prebuilt addon the package ships, prebuilds/<platform>-<arch>/simcsepp.node,
// with the CUDA kernels compiled in (SIMCSEPP_CUDA=on: nvcc required) and the CUDA runtime linked
// statically, so the one binary reports "no GPU" on machines without one and uses the GPU where there is
// one. Node-API 8: the same file serves every Node >= 18. It is not committed to git; `npm pack` and
// `npm publish` run this script with --check (prepack), which refuses to pack a missing, stale (native
// sources changed since) or CPU-only prebuilt.
//
//   node scripts/prebuild.mjs               build into build-prebuilt/ (minutes: nvcc) and copy it in
//   node scripts/prebuild.mjs --from FILE   use an existing nvcc build of these sources instead (trusted to be current)
//   node scripts/prebuild.mjs --check       only check the prebuilt (prepack)
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { prebuiltPath } from './install-policy.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const target = prebuiltPath(root)
const manifestPath = join(dirname(target), 'simcsepp.json')

function fail(message) {
  console.error(`simcsepp prebuild: ${message}`)
  process.exit(1)
}

/** sha256 over the native sources (paths and contents), so a prebuilt can be matched to the code it was built from. */
function sourceHash() {
  const files = []
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else files.push(relative(root, p))
    }
  }
  for (const dir of ['native', 'kernels']) walk(join(root, dir))
  files.push('CMakeLists.txt', 'binding.gyp')
  const h = createHash('sha256')
  for (const f of files.sort())
    h.update(`${f}\0`)
      .update(readFileSync(join(root, f)))
      .update('\0')
  return h.digest('hex')
}

/** cudaStatus() of `file`, from a fresh process (a binary that fails to load cannot take this one down). */
function probe(file) {
  const code = 'process.stdout.write(JSON.stringify(require(process.argv[1]).cudaStatus()))'
  const r = spawnSync(process.execPath, ['-e', code, file], { encoding: 'utf8' })
  if (r.status !== 0) fail(`${file} does not load: ${(r.stderr || '').trim()}`)
  return JSON.parse(r.stdout)
}

function check() {
  if (!existsSync(target) || !existsSync(manifestPath)) fail(`${target} is missing: run \`npm run build:prebuilt\` first`)
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'))
  if (manifest.sourceHash !== sourceHash())
    fail(`${target} was built from other native sources than these: run \`npm run build:prebuilt\` again`)
  if (!probe(target).compiled) fail(`${target} has no CUDA kernels compiled in: run \`npm run build:prebuilt\` on a machine with nvcc`)
  console.error(`simcsepp prebuild: ${relative(root, target)} is current (CUDA kernels compiled in)`) // stderr: keeps `npm pack --json` parseable
}

const args = process.argv.slice(2)
if (args[0] === '--check') {
  check()
} else {
  let built
  if (args[0] === '--from') {
    if (!args[1]) fail('--from needs the path of a built simcsepp.node')
    built = resolve(args[1])
  } else if (args.length === 0) {
    const env = { ...process.env, SIMCSEPP_CUDA: 'on', SIMCSEPP_BUILD_DIR: 'build-prebuilt' }
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { cwd: root, stdio: 'inherit', env })
    if (r.status !== 0) fail('the build failed (see above)')
    built = join(root, 'build-prebuilt', 'Release', 'simcsepp.node')
  } else fail(`unknown arguments: ${args.join(' ')} (expected nothing, --from FILE or --check)`)
  const status = probe(built)
  if (!status.compiled) fail(`${built} has no CUDA kernels compiled in (build it with SIMCSEPP_CUDA=on and nvcc on PATH)`)
  if (status.emulated) fail(`${built} is the emulated CUDA flavour, not for shipping`)
  mkdirSync(dirname(target), { recursive: true })
  copyFileSync(built, target)
  writeFileSync(
    manifestPath,
    JSON.stringify({ sourceHash: sourceHash(), napiVersion: 8, builtFrom: relative(root, built) }, null, 2) + '\n',
  )
  console.log(
    `simcsepp prebuild: wrote ${relative(root, target)} (${(statSync(target).size / 2 ** 20).toFixed(1)} MB, CUDA kernels compiled in)`,
  )
}
