// The addon on aarch64 (NVIDIA Grace, AWS Graviton, Ampere, Apple silicon under Linux): every source of the CPU
// build (binding.gyp's list, its flags) compiled by an aarch64 cross compiler with warnings as errors, and
// linked; then, where qemu-aarch64 and an arm64 Node.js are at hand (.ci/run fetches them), a tiny model run
// with that addon on aarch64 (test/helpers/arch-fingerprint.mjs: initial weights, eval and training passes,
// gradients in fp32 and bf16, int8 vectors) gives the same bits as this machine's portable kernels.
import t from 'tap'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cxx = 'aarch64-linux-gnu-g++'
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0

/** Where .ci/run unpacks Debian's arm64 Node.js and its libraries (not installed: they would replace node). */
const armRoot = process.env.SIMCSEPP_AARCH64_ROOT ?? join(tmpdir(), 'simcsepp-aarch64-root')

if (!has(cxx)) {
  t.comment(`skipped: no ${cxx} (Debian: apt-get install g++-aarch64-linux-gnu; .ci/run installs it)`)
  t.pass('nothing to check without the cross compiler')
} else {
  const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')) as {
    targets: { sources: string[]; defines: string[]; cflags_cc: string[] }[]
  }
  const target = gyp.targets[0]
  const require = createRequire(import.meta.url)
  const napiInclude = (require('node-addon-api') as { include_dir: string }).include_dir
  const headers = join(dirname(require.resolve('node-api-headers/package.json')), 'include')
  const out = mkdtempSync(join(tmpdir(), 'simcsepp-aarch64-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const addonPath = join(out, 'simcsepp.node')

  t.test('every source of the CPU build compiles for aarch64 without a warning, and links', async (t) => {
    const flags = [
      ...target.cflags_cc,
      '-Werror',
      '-fPIC',
      '-DBUILDING_NODE_EXTENSION',
      ...target.defines.map((d) => `-D${d}`),
      `-I${napiInclude}`,
      `-I${headers}`,
      `-I${join(root, 'native')}`,
    ]
    const jobs = Math.max(1, Math.min(4, availableParallelism()))
    const objects: string[] = []
    const failures: string[] = []
    for (let i = 0; i < target.sources.length; i += jobs) {
      const batch = target.sources.slice(i, i + jobs)
      const runs = await Promise.all(
        batch.map(
          (src) =>
            new Promise<{ src: string; status: number | null; stderr: string }>((resolve) => {
              const obj = join(out, basename(src) + '.o')
              objects.push(obj)
              const p = spawn(cxx, [...flags, '-c', join(root, src), '-o', obj])
              let stderr = ''
              p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
              p.on('close', (status) => resolve({ src, status, stderr }))
            }),
        ),
      )
      for (const r of runs) if (r.status !== 0) failures.push(`${r.src}:\n${r.stderr.slice(0, 2000)}`)
    }
    t.same(failures, [], `${target.sources.length} sources compiled with ${cxx} ${target.cflags_cc.join(' ')} -Werror`)
    if (failures.length) return
    execFileSync(cxx, ['-shared', '-o', addonPath, ...objects, ...['-ldl', '-lpthread']])
    const file = spawnSync('file', [addonPath], { encoding: 'utf8' })
    if (file.status === 0) t.match(file.stdout, /ELF 64-bit LSB shared object, ARM aarch64/)
    else t.ok(existsSync(addonPath), 'linked')
  })

  const armNode = join(armRoot, 'usr', 'bin', 'node')
  const canRun = has('qemu-aarch64') && existsSync(armNode)
  t.test(
    'on aarch64 (qemu) the addon computes the bits of the portable kernels here',
    { skip: canRun ? false : `needs qemu-aarch64 and an arm64 Node.js at ${armNode} (.ci/run unpacks Debian's)` },
    async (t) => {
      t.ok(existsSync(addonPath), 'the aarch64 addon was built')
      const fingerprint = join(root, 'test', 'helpers', 'arch-fingerprint.mjs')
      // The x86 kernels that compute other bits than the portable ones (the GEMM's and attention's summation
      // order, int8's none) forced to the portable ones; GELU's versions agree but are forced too.
      const portable = {
        SIMCSEPP_GEMM_KERNEL: 'generic',
        SIMCSEPP_ATTENTION_KERNEL: 'generic',
        SIMCSEPP_GELU_KERNEL: 'baseline',
        SIMCSEPP_INT8_KERNEL: 'generic',
      }
      const here = spawnSync(process.execPath, [fingerprint], { encoding: 'utf8', env: { ...process.env, ...portable } })
      t.equal(here.status, 0, here.stderr)
      const lib = ['usr/lib/aarch64-linux-gnu', 'lib/aarch64-linux-gnu'].map((d) => join(armRoot, d)).join(':')
      // env -u: tap puts its process-info loader into every child's NODE_OPTIONS, and it is not for Node 18.
      const arm = spawnSync('env', ['-u', 'NODE_OPTIONS', 'qemu-aarch64', armNode, fingerprint], {
        encoding: 'utf8',
        env: { ...process.env, QEMU_LD_PREFIX: armRoot, LD_LIBRARY_PATH: lib, SIMCSEPP_ADDON: addonPath },
        timeout: 300_000,
      })
      t.equal(arm.status, 0, arm.stderr)
      if (here.status !== 0 || arm.status !== 0) return
      const a = JSON.parse(here.stdout) as Record<string, string>,
        b = JSON.parse(arm.stdout) as Record<string, string>
      t.equal(b.arch, 'arm64')
      // The portable kernels, but int8's SDOT one where the CPU (qemu's, here) has Armv8.2's dot product.
      t.match(b.kernels, /^generic\/baseline\/generic\/(dotprod|generic)$/, `aarch64's kernels: ${b.kernels}`)
      const keys = Object.keys(a).filter((k) => k !== 'arch' && k !== 'kernels')
      t.ok(keys.length >= 13)
      for (const k of keys) t.equal(b[k], a[k], `${k}: the same bits on aarch64`)
    },
  )
}
