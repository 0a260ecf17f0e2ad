// Finds the native addon: which files are candidates, in which order, and what to say when none loads.
// Kept apart from native.ts (the addon's interface) so the search order can be tested with a fake require.
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'

/** Where a prebuilt addon for this platform lives in the package (scripts/prebuild.mjs writes it). */
export function prebuiltPath(packageRoot: string, platform: string = process.platform, arch: string = process.arch): string {
  return join(packageRoot, 'prebuilds', `${platform}-${arch}`, 'simcsepp.node')
}

/**
 * The files to try, in order. An explicit SIMCSEPP_ADDON is the only candidate: falling back to another
 * build would hide that the requested one (e.g. the emulated flavour of npm run test:emulated) failed.
 * Otherwise a local build (it is what `npm run build` or a source install just made, so it wins), then
 * the prebuilt shipped in the package for this platform and architecture.
 */
export function addonCandidates(packageRoot: string, env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.SIMCSEPP_ADDON) return [resolve(env.SIMCSEPP_ADDON)]
  return [
    join(packageRoot, 'build', 'Release', 'simcsepp.node'),
    join(packageRoot, 'build', 'Debug', 'simcsepp.node'),
    prebuiltPath(packageRoot),
  ]
}

/** Loads the first candidate that loads; otherwise throws one Error naming every file tried and why it failed. */
export function loadAddon<T>(candidates: readonly string[], load: (path: string) => T): T {
  const errors: string[] = []
  for (const path of candidates) {
    if (!existsSync(path)) {
      errors.push(`${path}: not found`)
      continue
    }
    try {
      return load(path)
    } catch (e) {
      errors.push(`${path}: ${(e as Error).message}`)
    }
  }
  throw new Error(
    'simcsepp: the native addon could not be loaded.\n' +
      errors.map((e) => `  tried ${e}`).join('\n') +
      '\nPossible solutions:\n' +
      `  - linux-x64 packages ship a prebuilt addon (prebuilds/linux-x64); on ${process.platform}-${process.arch}, build it from source:\n` +
      '    `SIMCSEPP_BUILD_FROM_SOURCE=1 npm rebuild simcsepp --foreground-scripts` (needs a C++17 compiler; cmake and nvcc are optional)\n' +
      '  - a prebuilt that fails with "GLIBC_..." or "GLIBCXX_... not found" needs a newer C library: build from source as above\n' +
      '  - reinstall after changing Node.js versions (the addon targets Node-API 8, Node >= 18)\n' +
      '  - set SIMCSEPP_ADDON to the path of a simcsepp.node built for this machine',
  )
}
