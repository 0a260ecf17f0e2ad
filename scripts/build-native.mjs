#!/usr/bin/env node
// Builds the native addon into build/Release/simcsepp.node (run by `npm install`).
//
// As the package's install script, it first tries the prebuilt addon shipped for this platform
// (prebuilds/<platform>-<arch>/simcsepp.node, loaded in a child process) and builds nothing when it
// loads. It builds from source when there is none, it does not load, SIMCSEPP_BUILD_FROM_SOURCE=1, a
// SIMCSEPP_CUDA/SIMCSEPP_NO_CUDA setting asks for a particular build, or the package is a git checkout
// (its native code may differ from any prebuilt). Run directly (`node scripts/build-native.mjs`), it
// always builds.
//
// With cmake on PATH: cmake-js and CMakeLists.txt. Without cmake: node-gyp and binding.gyp (CPU only).
// CUDA (SIMCSEPP_CUDA): auto (default) compiles the kernels with nvcc only when nvcc is found and an
// NVIDIA driver is present (/proc/driver/nvidia or nvidia-smi), since without one they cannot run and
// cost minutes of build; on compiles them whenever nvcc is found and fails without it (CI, and the
// prebuilt, which must carry them); off (or SIMCSEPP_NO_CUDA=1) skips them; emulate builds them for
// the host emulator (emulator/, for tests). SIMCSEPP_BUILD_DIR builds into another directory than
// build/ (npm run test:emulated uses build-emulate/); SIMCSEPP_WERROR=1 makes warnings in our code errors.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { cudaMode, hasNvidiaDriver, prebuiltLoads, prebuiltPath, sourceBuildReason } from './install-policy.mjs'
import { availableParallelism } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const jobs = String(availableParallelism())

function run(cmd, args, env = {}) {
  console.log(`simcsepp: ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } })
  if (r.error) throw r.error
  return r.status ?? 1
}

function has(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0
}

/** As the install script: true when the prebuilt addon can be used as it is. */
function usePrebuilt() {
  if (sourceBuildReason(process.env, root)) return false
  const prebuilt = prebuiltPath(root)
  const why = prebuiltLoads(prebuilt)
  if (why === null) {
    console.log(`simcsepp: using the prebuilt addon ${prebuilt} (SIMCSEPP_BUILD_FROM_SOURCE=1 builds from source instead)`)
    return true
  }
  console.log(`simcsepp: building from source: the prebuilt addon cannot be used (${why})`)
  return false
}

if (usePrebuilt()) process.exit(0)

let status
if (has('cmake')) {
  const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js')
  const args = [cmakeJs, 'build', '--parallel', jobs, '--log-level', 'warn']
  const { mode, note, error } = cudaMode(process.env, hasNvidiaDriver)
  if (error) {
    console.error(`simcsepp: ${error}`)
    process.exit(2)
  }
  if (note) console.log(`simcsepp: ${note}`)
  args.push(`--CDSIMCSEPP_CUDA_MODE=${mode}`)
  if (process.env.SIMCSEPP_BUILD_DIR) args.push('--out', process.env.SIMCSEPP_BUILD_DIR)
  const werror = process.env.SIMCSEPP_WERROR === '1' ? 'ON' : 'OFF'
  args.push(`--CDSIMCSEPP_WERROR=${werror}`)
  // SIMCSEPP_SANITIZE=address (scripts/test-asan.sh): the C++ sources built and linked with -fsanitize=address.
  const sanitize = process.env.SIMCSEPP_SANITIZE ?? ''
  if (!/^[a-z,]*$/.test(sanitize)) {
    console.error(`simcsepp: SIMCSEPP_SANITIZE must be a -fsanitize= list such as address, got '${sanitize}'`)
    process.exit(2)
  }
  args.push(`--CDSIMCSEPP_SANITIZE=${sanitize}`)
  // cmake-js build configures only a directory that is not configured yet, so these settings would not
  // reach an existing build directory: start it over when its cache holds different ones.
  const cache = join(process.env.SIMCSEPP_BUILD_DIR ? resolve(root, process.env.SIMCSEPP_BUILD_DIR) : join(root, 'build'), 'CMakeCache.txt')
  if (existsSync(cache)) {
    const text = readFileSync(cache, 'utf8')
    const cached = (name) => new RegExp(`^${name}:[A-Z]+=(.*)$`, 'm').exec(text)?.[1]
    if (
      cached('SIMCSEPP_CUDA_MODE') !== mode ||
      (cached('SIMCSEPP_WERROR') ?? 'OFF') !== werror ||
      (cached('SIMCSEPP_SANITIZE') ?? '') !== sanitize
    ) {
      console.log(`simcsepp: ${cache} was configured differently; configuring again (CUDA ${mode}, warnings as errors ${werror})`)
      rmSync(cache)
    }
  }
  status = run(process.execPath, args, { CMAKE_BUILD_PARALLEL_LEVEL: jobs })
} else {
  if (process.env.SIMCSEPP_CUDA === 'on' || process.env.SIMCSEPP_CUDA === 'emulate') {
    console.error(`simcsepp: SIMCSEPP_CUDA=${process.env.SIMCSEPP_CUDA} needs cmake, which is not on PATH`)
    process.exit(2)
  }
  console.log('simcsepp: cmake not found; building the CPU backend with node-gyp (no CUDA)')
  const gyp = process.env.npm_config_node_gyp
  // node-gyp downloads Node's headers unless told where they are: the ones installed with this node
  // (<prefix>/include/node) let it build offline.
  const prefix = join(dirname(process.execPath), '..')
  const args = ['rebuild', '-j', jobs, ...(existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [])]
  status = gyp && existsSync(gyp) ? run(process.execPath, [gyp, ...args]) : run('npx', ['--yes', 'node-gyp', ...args])
}
if (status !== 0) {
  console.error('simcsepp: building the native addon failed (see the compiler output above).')
  process.exit(status)
}
