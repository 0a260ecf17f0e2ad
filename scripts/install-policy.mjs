// What the install does, decided in one place: whether the prebuilt addon shipped for this platform is
// used, and whether a source build compiles the CUDA kernels. Shared by the install script
// (build-native.mjs) and the release step that makes the prebuilt (prebuild.mjs); test/install-policy.test.ts.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

/**
 * prebuilds/<platform>-<arch>/simcsepp.node under the package root (lib/addon-loader.ts looks there too).
 * @param {string} root @param {string} [platform] @param {string} [arch] @returns {string}
 */
export function prebuiltPath(root, platform = process.platform, arch = process.arch) {
  return join(root, 'prebuilds', `${platform}-${arch}`, 'simcsepp.node')
}

/**
 * null when `file` loads in a fresh Node process and answers cudaStatus(), else why not. A child
 * process, so that a binary that crashes on load (or needs a newer C library) cannot take this one down.
 * @param {string} file @returns {string | null}
 */
export function prebuiltLoads(file) {
  if (!existsSync(file)) return `${file} not found`
  const probe = 'const a = require(process.argv[1]); process.stdout.write(JSON.stringify(a.cudaStatus()))'
  const r = spawnSync(process.execPath, ['-e', probe, file], { encoding: 'utf8', timeout: 60_000 })
  if (r.status === 0) return null
  const lines = (r.stderr || r.error?.message || `exit code ${r.status}`).trim().split('\n')
  return `${file} does not load: ${lines.find((l) => /error/i.test(l)) ?? lines[0]}`
}

/**
 * Why the install script must build from source even if a prebuilt loads, or null when it need not:
 * run by hand rather than as npm's install script, asked to (SIMCSEPP_BUILD_FROM_SOURCE=1), asked for a
 * particular build (SIMCSEPP_CUDA, SIMCSEPP_NO_CUDA, SIMCSEPP_BUILD_DIR), or a git checkout, whose native
 * code may differ from any prebuilt.
 * @param {NodeJS.ProcessEnv} env @param {string} root @returns {string | null}
 */
export function sourceBuildReason(env, root) {
  if (env.npm_lifecycle_event !== 'install') return 'run directly, not as the install script'
  if (env.SIMCSEPP_BUILD_FROM_SOURCE === '1') return 'SIMCSEPP_BUILD_FROM_SOURCE=1'
  for (const name of ['SIMCSEPP_CUDA', 'SIMCSEPP_NO_CUDA', 'SIMCSEPP_BUILD_DIR']) if (env[name]) return `${name} is set`
  if (existsSync(join(root, '.git'))) return 'a git checkout'
  return null
}

/** Whether an NVIDIA driver is installed: without one, CUDA kernels compiled in could never run. */
export function hasNvidiaDriver() {
  return existsSync('/proc/driver/nvidia/version') || spawnSync('nvidia-smi', ['-L'], { stdio: 'ignore' }).status === 0
}

/**
 * The CUDA mode CMakeLists.txt gets, from SIMCSEPP_CUDA (auto, on, off, emulate) or SIMCSEPP_NO_CUDA=1:
 * auto becomes off without a driver (kernels that cannot run here are minutes of nvcc for nothing).
 * { mode } or { error }; `note` says why auto was narrowed.
 * @param {NodeJS.ProcessEnv} env @param {() => boolean} driver
 * @returns {{ mode: string, note?: string, error?: undefined } | { error: string, mode?: undefined, note?: undefined }}
 */
export function cudaMode(env, driver) {
  const requested = env.SIMCSEPP_NO_CUDA === '1' ? 'off' : (env.SIMCSEPP_CUDA ?? 'auto')
  if (!['auto', 'on', 'off', 'emulate'].includes(requested))
    return { error: `SIMCSEPP_CUDA must be auto, on, off or emulate, not '${requested}'` }
  if (requested !== 'auto' || driver()) return { mode: requested }
  return { mode: 'off', note: 'no NVIDIA driver found: building the CPU backend only (SIMCSEPP_CUDA=on compiles the CUDA kernels anyway)' }
}
