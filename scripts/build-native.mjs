#!/usr/bin/env node
// Builds the native addon into build/Release/simcsepp.node (run by `npm install`).
//
// With cmake on PATH: cmake-js and CMakeLists.txt, compiling the CUDA kernels when nvcc is found.
// Without cmake: node-gyp and binding.gyp (CPU backend only).
// Environment: SIMCSEPP_NO_CUDA=1 (or SIMCSEPP_CUDA=off) skips CUDA; SIMCSEPP_CUDA=emulate builds the CUDA
// kernels for the host emulator (emulator/, for tests); SIMCSEPP_BUILD_DIR builds into another directory
// than build/ (npm run test:emulated uses build-emulate/); SIMCSEPP_WERROR=1 makes warnings in our code errors.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
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

let status
if (has('cmake')) {
  const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js')
  const args = [cmakeJs, 'build', '--parallel', jobs, '--log-level', 'warn']
  const mode = process.env.SIMCSEPP_NO_CUDA === '1' ? 'off' : (process.env.SIMCSEPP_CUDA ?? 'auto')
  if (!['auto', 'off', 'emulate'].includes(mode)) {
    console.error(`simcsepp: SIMCSEPP_CUDA must be auto, off or emulate, not '${mode}'`)
    process.exit(2)
  }
  args.push(`--CDSIMCSEPP_CUDA_MODE=${mode}`)
  if (process.env.SIMCSEPP_BUILD_DIR) args.push('--out', process.env.SIMCSEPP_BUILD_DIR)
  const werror = process.env.SIMCSEPP_WERROR === '1' ? 'ON' : 'OFF'
  args.push(`--CDSIMCSEPP_WERROR=${werror}`)
  // cmake-js build configures only a directory that is not configured yet, so these settings would not
  // reach an existing build directory: start it over when its cache holds different ones.
  const cache = join(process.env.SIMCSEPP_BUILD_DIR ? resolve(root, process.env.SIMCSEPP_BUILD_DIR) : join(root, 'build'), 'CMakeCache.txt')
  if (existsSync(cache)) {
    const text = readFileSync(cache, 'utf8')
    const cached = (name) => new RegExp(`^${name}:[A-Z]+=(.*)$`, 'm').exec(text)?.[1]
    if (cached('SIMCSEPP_CUDA_MODE') !== mode || (cached('SIMCSEPP_WERROR') ?? 'OFF') !== werror) {
      console.log(`simcsepp: ${cache} was configured differently; configuring again (CUDA ${mode}, warnings as errors ${werror})`)
      rmSync(cache)
    }
  }
  status = run(process.execPath, args, { CMAKE_BUILD_PARALLEL_LEVEL: jobs })
} else {
  console.log('simcsepp: cmake not found; building the CPU backend with node-gyp (no CUDA)')
  const gyp = process.env.npm_config_node_gyp
  status =
    gyp && existsSync(gyp) ? run(process.execPath, [gyp, 'rebuild', '-j', jobs]) : run('npx', ['--yes', 'node-gyp', 'rebuild', '-j', jobs])
}
if (status !== 0) {
  console.error('simcsepp: building the native addon failed (see the compiler output above).')
  process.exit(status)
}
