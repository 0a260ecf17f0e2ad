// The Node-API boundary under mutation: nothing a caller passes may crash the process. A child process records the
// argument lists the library itself passes to the addon's functions during real work (two training steps of micro
// BERT, MPNet and ModernBERT models in fp32 and bf16, BERT's in micro-batches; the losses, int8 products, search,
// and the ops the models do not call), then calls every recorded function again with one argument at a time
// replaced: a tensor with each dimension one larger, one smaller or 0, a dimension more or fewer, flattened,
// disposed, a view into a larger buffer, or another tensor argument of the call (aliasing); a typed array one
// value shorter or longer, empty, of another element type, or with out-of-range indices; an option object without
// each of its keys or with each key's value mutated; a number at -1, 0, NaN, +-Infinity, 2^31, 2^32 + 1, 2^53,
// 1e30 or off by one; a value of another type; and an argument too many. Each call must return or throw an Error
// with a message. The child writes each call to a trace file before making it, so a crash names its call.
// Every export is either fuzzed or listed in NOT_FUZZED with the reason, so a new export is not missed.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, openSync, writeSync, closeSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { addon } from '../lib/native.js'

/** Exports the fuzz does not call, and why. */
const NOT_FUZZED: Record<string, string> = {
  NativeTensor: 'a class: its constructor and methods have a section of their own below',
  numThreads: "changes the process's thread pool for the calls after it",
  cudaTimerMark: 'CUDA only (the CPU build refuses it before reading an argument)',
  cudaTimerElapsed: 'CUDA only',
  cudaTimerReset: 'CUDA only',
  cudaKernelProfileStart: 'CUDA only',
  cudaKernelProfileStop: 'CUDA only',
  distInit: 'starts MPI or NCCL for the whole process (test/distributed-native.test.ts checks its arguments)',
  distAllReduceSum: 'needs distInit first',
  distAllGather: 'needs distInit first',
  distBroadcast: 'needs distInit first',
  distMax: 'needs distInit first',
  distBarrier: 'needs distInit first',
  distAbort: 'ends the process group',
  distFinalize: 'ends the process group',
  distStats: 'needs distInit first',
  graphSession: 'CUDA only (step graphs)',
  graphCapture: 'CUDA only',
  graphLaunch: 'CUDA only',
  graphResults: 'CUDA only',
  graphSessionFree: 'CUDA only',
}

/** Recorded calls kept per function (distinct argument descriptions), and the calls each is mutated into. */
const CALLS_PER_FUNCTION = 2

type Described =
  | { v: number | string | boolean | null; u?: boolean }
  | { tensor: number[] }
  | { typed: string; data: number[] }
  | { array: Described[] }
  | { object: Record<string, Described> }
  | { opaque: string }
type Variant = Described | { disposed: number[] } | { viewOf: number[] } | { alias: number }

const childFlag = 'SIMCSEPP_ADDON_FUZZ_CHILD'

if (process.env[childFlag]) {
  writeFileSync(process.env.SIMCSEPP_ADDON_FUZZ_RESULT!, JSON.stringify(await fuzz(process.env.SIMCSEPP_ADDON_FUZZ_TRACE!)))
} else {
  t.test('every recorded addon call, one argument mutated at a time: an Error or a result, never a crash', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'simcsepp-addon-fuzz-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const [trace, result] = [join(dir, 'trace.txt'), join(dir, 'result.json')]
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
      env: { ...process.env, [childFlag]: '1', TAP: '0', SIMCSEPP_ADDON_FUZZ_TRACE: trace, SIMCSEPP_ADDON_FUZZ_RESULT: result },
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    })
    const last = () => readFileSync(trace, 'utf8').trimEnd().split('\n').slice(-3).join('\n')
    if (r.status !== 0) {
      t.fail(`the child ended with ${r.signal ?? `status ${r.status}`}; its last calls:\n${last()}\n${r.stderr.slice(-2000)}`)
      return
    }
    const got = JSON.parse(readFileSync(result, 'utf8')) as { calls: number; notErrors: string[]; fuzzed: string[]; tensorCalls: number }
    t.same(got.notErrors, [], 'every throw was an Error with a message')
    t.ok(got.calls > 10000, `${got.calls} mutated calls`)
    t.ok(got.tensorCalls > 300, `${got.tensorCalls} NativeTensor constructions and method calls`)
    const exported = Object.keys(addon).filter((k) => typeof (addon as unknown as Record<string, unknown>)[k] === 'function')
    t.same(
      exported.filter((k) => !got.fuzzed.includes(k) && !(k in NOT_FUZZED)),
      [],
      'every export is fuzzed or listed in NOT_FUZZED',
    )
    t.same(
      Object.keys(NOT_FUZZED).filter((k) => got.fuzzed.includes(k) || !exported.includes(k)),
      [],
      'NOT_FUZZED lists only exports that are not fuzzed',
    )
  })
}

/** The child: records the library's calls, then replays them mutated. */
async function fuzz(tracePath: string): Promise<{ calls: number; notErrors: string[]; fuzzed: string[]; tensorCalls: number }> {
  const raw = addon as unknown as Record<string, (...args: unknown[]) => unknown>
  const recorded = new Map<string, Map<string, Described[]>>()
  const describe = (x: unknown, depth = 0): Described => {
    if (x === undefined) return { v: null, u: true }
    if (x === null || typeof x === 'number' || typeof x === 'boolean' || typeof x === 'string') return { v: x }
    if (x instanceof addon.NativeTensor) return { tensor: x.shape }
    if (ArrayBuffer.isView(x)) return { typed: x.constructor.name, data: Array.from(x as unknown as ArrayLike<number>) }
    if (Array.isArray(x)) return { array: x.map((e) => describe(e, depth + 1)) }
    if (typeof x === 'object' && depth < 3)
      return { object: Object.fromEntries(Object.entries(x).map(([k, v]) => [k, describe(v, depth + 1)])) }
    return { opaque: String(x) }
  }
  const originals = new Map<string, (...args: unknown[]) => unknown>()
  for (const name of Object.keys(raw)) {
    const f = raw[name]
    if (typeof f !== 'function' || name === 'NativeTensor' || name in NOT_FUZZED) continue
    originals.set(name, f)
    raw[name] = function (this: unknown, ...args: unknown[]) {
      const described = args.map((a) => describe(a))
      const out = f.apply(this, args)
      const calls = recorded.get(name) ?? new Map<string, Described[]>()
      recorded.set(name, calls)
      const key = JSON.stringify(described)
      if (calls.size < CALLS_PER_FUNCTION && !calls.has(key) && key.length < 200_000) calls.set(key, described)
      return out
    }
  }
  try {
    await workload()
  } finally {
    for (const [name, f] of originals) raw[name] = f
  }

  const traceFd = openSync(tracePath, 'w')
  const made: InstanceType<typeof addon.NativeTensor>[] = []
  const tensor = (shape: number[]) => {
    const x = new addon.NativeTensor(shape, 'cpu')
    const n = shape.reduce((a, b) => a * b, 1)
    if (n > 0) x.copyFrom(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + shape.length)))
    made.push(x)
    return x
  }
  const typedArrays: Record<string, new (data: number[]) => ArrayBufferView> = {
    Float32Array,
    Float64Array,
    Int32Array,
    Uint8Array,
    Uint16Array,
    Uint32Array,
  }
  const build = (d: Variant, args: unknown[]): unknown => {
    if ('alias' in d) return args[d.alias]
    if ('disposed' in d) {
      const x = tensor(d.disposed)
      x.dispose()
      return x
    }
    if ('viewOf' in d) return tensor([d.viewOf.reduce((a, b) => a * b, 1) + 7]).view(7, d.viewOf)
    if ('tensor' in d) return tensor(d.tensor)
    if ('typed' in d) {
      const Typed = typedArrays[d.typed]
      if (!Typed) throw new TypeError(`the fuzz rebuilds no ${d.typed}`) // (would count as a call that threw)
      return new Typed(d.data)
    }
    if ('array' in d) return d.array.map((e) => build(e, args))
    if ('object' in d) return Object.fromEntries(Object.entries(d.object).map(([k, v]) => [k, build(v, args)]))
    if ('v' in d) return d.u ? undefined : d.v
    return undefined
  }
  const numbers = [-1, 0, 1, 0.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 32 + 1, 2 ** 53, -(2 ** 53), 1e30]
  const others: Variant[] = [{ v: null, u: true }, { v: null }, { v: true }, { v: 'x' }, { object: {} }, { array: [] }, { tensor: [1] }]
  const variants = (d: Described): Variant[] => {
    const out: Variant[] = []
    if ('tensor' in d) {
      const s = d.tensor
      s.forEach((n, i) => {
        out.push({ tensor: s.map((v, j) => (j === i ? n + 1 : v)) }, { tensor: s.map((v, j) => (j === i ? 0 : v)) })
        if (n > 1) out.push({ tensor: s.map((v, j) => (j === i ? n - 1 : v)) })
      })
      out.push({ tensor: [...s, 1] }, { tensor: s.length > 1 ? s.slice(1) : [1] }, { tensor: [s.reduce((a, b) => a * b, 1)] })
      out.push({ disposed: s }, { viewOf: s })
    } else if ('typed' in d) {
      const data = d.data
      out.push({ typed: d.typed, data: data.slice(0, -1) }, { typed: d.typed, data: [...data, 0] }, { typed: d.typed, data: [] })
      for (const other of ['Float32Array', 'Int32Array', 'Uint8Array', 'Float64Array'])
        if (other !== d.typed) out.push({ typed: other, data })
      if (d.typed.startsWith('Int') || d.typed.startsWith('Uint'))
        for (const bad of [-1, 255, 1e6]) out.push({ typed: d.typed, data: data.map(() => bad) })
    } else if ('object' in d) {
      for (const k of Object.keys(d.object)) {
        const rest = { ...d.object }
        delete rest[k]
        out.push({ object: rest })
        for (const v of variants(d.object[k])) out.push({ object: { ...d.object, [k]: v as Described } })
      }
    } else if ('array' in d) {
      out.push({ array: d.array.slice(1) }, { array: [...d.array, d.array[0] ?? { v: 0 }] })
      d.array.forEach((e, i) => {
        for (const v of variants(e)) out.push({ array: d.array.map((x, j) => (i === j ? (v as Described) : x)) })
      })
    } else if ('v' in d && typeof d.v === 'number') {
      for (const n of [...numbers, d.v + 1, d.v - 1]) out.push({ v: n })
    }
    return out
  }
  let calls = 0
  const notErrors: string[] = []
  const attempt = (what: string, call: () => unknown) => {
    writeSync(traceFd, what + '\n')
    calls++
    try {
      call()
    } catch (e) {
      if (!(e instanceof Error) || !e.message) notErrors.push(`${what}: threw ${String(e)}`)
    }
    for (const x of made.splice(0)) if (!x.disposed) x.dispose()
  }
  const show = (v: Variant) => JSON.stringify(v).slice(0, 120)
  for (const [name, list] of recorded) {
    for (const call of list.values()) {
      for (let i = 0; i <= call.length; i++) {
        const mutations: Variant[] =
          i === call.length
            ? [{ v: 0 }] // one argument too many
            : [
                ...variants(call[i]),
                ...others,
                ...numbers.map((v) => ({ v })),
                ...('tensor' in call[i] ? call.flatMap((d, j) => (j !== i && 'tensor' in d ? [{ alias: j }] : [])) : []),
              ]
        for (const m of mutations) {
          attempt(`${name} argument ${i}: ${show(m)}`, () => {
            const args: unknown[] = []
            call.forEach((d) => args.push(build(d, args)))
            // (an alias refers to an argument built above; the others are built fresh)
            args[i] = build(m, args)
            return raw[name](...args)
          })
        }
      }
    }
  }
  // NativeTensor: the constructor's shape and device, then each method with mutated arguments.
  let tensorCalls = 0
  const shapes: unknown[] = [[2, 3], [], [0], [-1], [2.5], [2 ** 31, 2 ** 31], [NaN], ['2'], 6, null, undefined, {}, [1e12]]
  for (const shape of shapes)
    for (const device of ['cpu', 'gpu', undefined, 3, 'cuda'])
      attempt(`new NativeTensor(${JSON.stringify(shape)}, ${String(device)})`, () => {
        tensorCalls++
        made.push(new (addon.NativeTensor as unknown as new (...a: unknown[]) => InstanceType<typeof addon.NativeTensor>)(shape, device))
      })
  const methodArgs: unknown[][] = [
    [],
    [null],
    [new Float32Array(5)],
    [new Float32Array(6)],
    [new Float32Array(7)],
    [new Int32Array(6)],
    ['cpu'],
    ['gpu'],
    [0, [2, 3]],
    [1, [2, 3]],
    [-1, [6]],
    [0, [7]],
    [NaN, [1]],
    [0, [2 ** 31, 2]],
    [NaN],
    [Infinity],
    ['x'],
    [{}],
  ]
  for (const method of ['toFloat32Array', 'copyFrom', 'to', 'view', 'fill', 'copyTensor', 'attachBf16Mirror', 'dispose'])
    for (const args of [...methodArgs, [tensor([6])], [tensor([2, 3])], [tensor([7])]])
      for (const disposedFirst of [false, true])
        attempt(`NativeTensor[2, 3]${disposedFirst ? ' (disposed)' : ''}.${method}(${args.length} arguments)`, () => {
          tensorCalls++
          const x = tensor([2, 3])
          if (disposedFirst) x.dispose()
          return (x as unknown as Record<string, (...a: unknown[]) => unknown>)[method](...args)
        })
  closeSync(traceFd)
  return { calls, notErrors, fuzzed: [...recorded.keys()], tensorCalls }
}

/** The library's own calls to the addon: whatever these run is what the fuzz mutates. */
async function workload(): Promise<void> {
  const [{ microModel }, { BertModel }, { namedConfig }, { buildVocab, writeVocab }, { train }, ops, losses, { Tensor, nativeOf }] =
    await Promise.all([
      import('./helpers/encoder-e2e.mjs'),
      import('../lib/model/bert.js'),
      import('../lib/model/config.js'),
      import('../lib/train/vocab.js'),
      import('../lib/train/train.js'),
      import('../lib/ops.js'),
      import('../lib/losses.js'),
      import('../lib/tensor.js'),
    ])
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-addon-fuzz-work-'))
  const lib = { BertModel, namedConfig, buildVocab, writeVocab } as Parameters<typeof microModel>[0]
  const words = 'the cat sat on a mat and dog ran far away from home with blue red green big small'.split(' ')
  const data = join(dir, 'data.txt')
  writeFileSync(
    data,
    Array.from({ length: 24 }, (_, i) => [0, 1, 2, 3, 4].map((k) => words[(i * 7 + k * 3) % words.length]).join(' ')).join('\n') + '\n',
  )
  try {
    for (const type of ['bert', 'mpnet', 'modernbert'] as const) {
      const model = await microModel(lib, dir, `model-${type}`, type)
      for (const precision of ['fp32', 'bf16'] as const) {
        const out = join(dir, `run-${type}-${precision}`)
        const microBatch = type === 'bert' ? 5 : undefined
        await train({
          model,
          data,
          out,
          steps: 2,
          batchSize: 4,
          maxLen: 9,
          evalEvery: 0,
          saveEvery: 0,
          device: 'cpu',
          precision,
          microBatch,
        })
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  // Ops and exports the training steps above do not call.
  const r = (shape: number[], k = 1) =>
    Tensor.from(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.7 + k)),
      shape,
    )
  const x = r([6, 8])
  ops.layerNormApply(r([6, 8]), x, r([6]), r([6], 5), r([8]), r([8], 4))
  ops.geluForward(r([6, 8]), x)
  ops.geluBackward(r([6, 8]), x, r([6, 8], 6))
  ops.leadingColumns(r([6, 4]), x)
  ops.addLeadingColumns(r([6, 8]), r([6, 4]), 0.5)
  ops.scaleInplace(r([6, 8]), 0.5)
  ops.linearInt8Forward(r([6, 5]), x, ops.int8PackWeight(r([5, 8], 2)), r([5]), null)
  ops.poolMeanForward(r([2, 8]), r([2, 3, 8]), Int32Array.from([1, 1, 0, 1, 0, 0]))
  ops.poolMeanBackward(r([2, 3, 8]), r([2, 8]), Int32Array.from([1, 1, 0, 1, 0, 0]))
  ops.gradSumSquares(r([40]))
  ops.clipGradNorm(r([40]), 1)
  losses.simcse(r([4, 8]), r([4, 8], 2))
  losses.cosent(r([4, 8]), r([4, 8], 2), Float32Array.from([1, 2, 3, 4]))
  losses.mse(r([4, 8]), new Float32Array(32))
  const [n1, n2, n0] = [r([4, 8]), r([4, 8], 2), r([4, 8], 3)].map((v) => nativeOf(v, 'arg'))
  const [g1, g2, g0] = [r([4, 8]), r([4, 8]), r([4, 8])].map((v) => nativeOf(v, 'arg'))
  addon.offDropoutUnfused(n1, n2, n0, 0.05, 1, g1, g2, g0)
  addon.offDropoutWorkspaceBytes(4, 8, 'cpu')
  addon.gemm(nativeOf(r([4, 5]), 'arg'), nativeOf(r([4, 8]), 'arg'), nativeOf(r([5, 8]), 'arg'), false, true, 1, 0, false)
  addon.gemm(nativeOf(r([4, 5]), 'arg'), nativeOf(r([4, 8]), 'arg'), nativeOf(r([5, 8]), 'arg'), false, true, 1, 0, false, 'bf16')
  addon.philox4x32(1, 2, 3, 4, 5, 6)
  addon.attentionTakesBf16(32, 64)
  addon.attentionFormsProbs(32, 64)
  addon.int8Kernel()
  addon.backendOps('cpu')
  addon.tensorMemory()
  addon.bf16Counters()
  addon.gemmInfo()
  addon.cudaStatus()
  addon.unitRows(nativeOf(r([4, 8]), 'arg'))
  addon.searchTopK(nativeOf(r([10, 8]), 'arg'), new Float32Array(16), 3, 0, 10, new Float32Array(6), new Int32Array(6))
  addon.hammingTopK(new Uint8Array(40), 4, new Uint8Array(8), 5, 0, 10, new Float32Array(10), new Int32Array(10))
}
