// The Node-API boundary under mutation: nothing a caller passes may crash the process. A child process records the
// argument lists the library itself passes to the addon's functions during real work (two training steps of micro
// BERT, MPNet and ModernBERT models in fp32 and bf16, BERT's in micro-batches; the losses, int8 products, search,
// and the ops the models do not call), then calls every recorded function again with one argument at a time
// replaced: a tensor with each dimension one larger, one smaller or 0, a dimension more or fewer, flattened,
// disposed, a view into a larger buffer, or another tensor argument of the call (aliasing); a typed array one
// value shorter or longer, empty, of another element type, or with out-of-range indices; an option object without
// each of its keys or with each key's value mutated; a number at -1, 0, NaN, +-Infinity, 2^31, 2^32 + 1, 2^53,
// 1e30 or off by one; a bigint (the dropout offsets) at -1, 0, 2^63, 2^64 - 1, +-2^64, off by one or as a number; a
// value of another type; and an argument too many. Each call must return or throw an Error
// with a message. The child writes each call to a trace file before making it, so a crash names its call.
// Every export is either fuzzed or listed in NOT_FUZZED with the reason (CUDA_ONLY too, on the CPU), so a new export is
// not missed.
// Each recorded call replayed unchanged must run, so that the mutations test the binding and not the replay.
// With CUDA (the host emulator in CI, or a GPU), the workload trains on 'cuda' and the replays build their tensors
// there. No call may make a kernel fault (the emulator runs each launch when it is made, so the fault is reported by
// the call that made it), and a call with one of its CUDA tensors moved to the CPU, its others on CUDA, must be refused
// by the binding: under the emulator device memory is host memory, so such a call would run, where on a GPU it would
// crash.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync, openSync, writeSync, closeSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { addon } from '../lib/native.js'

/** Exports the fuzz does not call, and why. */
const NOT_FUZZED: Record<string, string> = {
  NativeTensor: 'a class: its constructor and methods have a section of their own below',
  numThreads: "changes the process's thread pool for the calls after it",
  distInit: 'starts MPI or NCCL for the whole process (test/distributed-native.test.ts checks its arguments)',
  distAllReduceSum: 'needs distInit first',
  distAllGather: 'needs distInit first',
  distBroadcast: 'needs distInit first',
  distMax: 'needs distInit first',
  distBarrier: 'needs distInit first',
  distAbort: 'ends the process group',
  distFinalize: 'ends the process group',
  distStats: 'needs distInit first',
}

/** The step-graph functions: fuzzed with CUDA by a section of their own (fuzzGraphs), not from recorded calls: a
 * session handle and a record function cannot be rebuilt from a description. */
const GRAPH_FUNCTIONS = ['graphSession', 'graphCapture', 'graphLaunch', 'graphResults', 'graphSessionFree']

/** Exports fuzzed only with CUDA: the CPU build refuses them before reading an argument. */
const CUDA_ONLY = ['cudaTimerMark', 'cudaTimerElapsed', 'cudaTimerReset', 'cudaKernelProfileStart', 'cudaKernelProfileStop']

/** What the fuzz on `device` leaves out, and why. */
function notFuzzed(device: 'cpu' | 'cuda'): Record<string, string> {
  if (device === 'cuda') return NOT_FUZZED
  return {
    ...NOT_FUZZED,
    ...Object.fromEntries(CUDA_ONLY.map((k) => [k, "CUDA only (the benchmarks' timers and profiler)"])),
    ...Object.fromEntries(GRAPH_FUNCTIONS.map((k) => [k, 'step graphs need CUDA'])),
  }
}

/** The CUDA runtime's messages for a kernel's fault (the emulator's too): an illegal or misaligned access, a trap. */
const KERNEL_FAULT = /illegal memory access|misaligned address|unspecified launch failure|illegal instruction|device-side assert/i

/** Recorded calls kept per function (distinct argument descriptions), and the calls each is mutated into. */
const CALLS_PER_FUNCTION = 2

type Described =
  | { v: number | string | boolean | null; u?: boolean }
  | { big: string }
  | { tensor: number[]; cuda?: boolean; bits?: number[] }
  | { typed: string; data: number[] }
  | { array: Described[] }
  | { object: Record<string, Described> }
  | { opaque: string }
type Variant = Described | { disposed: number[]; cuda?: boolean } | { viewOf: number[]; cuda?: boolean } | { alias: number }

const childFlag = 'SIMCSEPP_ADDON_FUZZ_CHILD'

/** The fuzz's device: CUDA where this addon can run it (the emulated build in CI), else the CPU. */
const fuzzDevice = addon.cudaStatus().available ? 'cuda' : 'cpu'

if (process.env[childFlag]) {
  const device = process.env.SIMCSEPP_ADDON_FUZZ_DEVICE === 'cuda' ? 'cuda' : 'cpu'
  writeFileSync(process.env.SIMCSEPP_ADDON_FUZZ_RESULT!, JSON.stringify(await fuzz(process.env.SIMCSEPP_ADDON_FUZZ_TRACE!, device)))
} else {
  t.test(`every recorded addon call on ${fuzzDevice}, one argument mutated at a time: an Error or a result, never a crash`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'simcsepp-addon-fuzz-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const [trace, result] = [join(dir, 'trace.txt'), join(dir, 'result.json')]
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
      env: {
        ...process.env,
        [childFlag]: '1',
        TAP: '0',
        SIMCSEPP_ADDON_FUZZ_TRACE: trace,
        SIMCSEPP_ADDON_FUZZ_RESULT: result,
        SIMCSEPP_ADDON_FUZZ_DEVICE: fuzzDevice,
        // The emulator runs each launch when it is made, so that a kernel's fault is reported by the call that
        // launched it (deferred, it would be reported by a later wait, or by a cudaFree that a dispose ignores).
        CUEMU_DEFER: '0',
      },
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    })
    const last = () =>
      existsSync(trace) ? readFileSync(trace, 'utf8').trimEnd().split('\n').slice(-3).join('\n') : '(none: the workload failed)'
    if (r.status !== 0) {
      t.fail(`the child ended with ${r.signal ?? `status ${r.status}`}; its last calls:\n${last()}\n${r.stderr.slice(-2000)}`)
      return
    }
    const got = JSON.parse(readFileSync(result, 'utf8')) as FuzzResult
    t.same(got.notErrors, [], 'every throw was an Error with a message')
    t.same(got.unfaithful, [], 'every recorded call, replayed unchanged, runs')
    t.same(got.kernelFaults, [], 'no kernel faulted: every bad argument was refused before a launch')
    if (fuzzDevice === 'cuda') {
      t.same(got.mixedAccepted, [], 'a CUDA call given one of its tensors on the CPU throws')
      // (and not as a kernel that ran on the CPU tensor's memory faulted)
      t.same(
        got.mixedErrors.filter((m) => !/to be on \S+'s device/.test(m)),
        [],
        'each such call is refused by the binding, naming the tensor and both devices',
      )
      t.ok(got.swaps > 150, `${got.swaps} calls with one of their CUDA tensors swapped for a CPU one`)
    }
    t.ok(got.calls > 10000, `${got.calls} mutated calls (${got.returned} returned)`)
    t.ok(got.tensorCalls > 300, `${got.tensorCalls} NativeTensor constructions and method calls`)
    if (fuzzDevice === 'cuda') t.ok(got.graphCalls > 300, `${got.graphCalls} step-graph calls`)
    const exported = Object.keys(addon).filter((k) => typeof (addon as unknown as Record<string, unknown>)[k] === 'function')
    t.same(
      exported.filter((k) => !got.fuzzed.includes(k) && !(k in notFuzzed(fuzzDevice))),
      [],
      'every export is fuzzed or listed in NOT_FUZZED',
    )
    t.same(
      Object.keys(notFuzzed(fuzzDevice)).filter((k) => got.fuzzed.includes(k) || !exported.includes(k)),
      [],
      'NOT_FUZZED lists only exports that are not fuzzed',
    )
  })
}

interface FuzzResult {
  calls: number
  /** Of them, those that returned (the rest threw). */
  returned: number
  notErrors: string[]
  /** Errors that report a kernel's fault (on a GPU: a lost CUDA context), with the call that reported it. */
  kernelFaults: string[]
  fuzzed: string[]
  tensorCalls: number
  /** CUDA: the calls of the step-graph section. */
  graphCalls: number
  /** The recorded calls that threw when replayed unchanged, with their errors. */
  unfaithful: string[]
  /** CUDA: the calls with a tensor swapped for a CPU one, and those of them that returned ('name argument i'). */
  swaps: number
  mixedAccepted: string[]
  mixedErrors: string[]
}

/** The child: records the library's calls, then replays them mutated. */
async function fuzz(tracePath: string, device: 'cpu' | 'cuda'): Promise<FuzzResult> {
  const raw = addon as unknown as Record<string, (...args: unknown[]) => unknown>
  const recorded = new Map<string, Map<string, Described[]>>()
  // contents: a tensor's values as their bit patterns too (up to 2^16 of them), so that a replay gets them back
  // (int8PackWeight's packed weight starts with a header that linearInt8Forward checks).
  const describe = (x: unknown, depth = 0, contents = false): Described => {
    if (x === undefined) return { v: null, u: true }
    if (x === null || typeof x === 'number' || typeof x === 'boolean' || typeof x === 'string') return { v: x }
    if (typeof x === 'bigint') return { big: x.toString() }
    if (x instanceof addon.NativeTensor) {
      const d: Described = x.device === 'cuda' ? { tensor: x.shape, cuda: true } : { tensor: x.shape }
      if (contents && !x.disposed && x.shape.reduce((a, b) => a * b, 1) <= 1 << 16)
        d.bits = Array.from(new Uint32Array(x.toFloat32Array().buffer))
      return d
    }
    if (ArrayBuffer.isView(x)) return { typed: x.constructor.name, data: Array.from(x as unknown as ArrayLike<number>) }
    if (Array.isArray(x)) return { array: x.map((e) => describe(e, depth + 1, contents)) }
    if (typeof x === 'object' && depth < 3)
      return { object: Object.fromEntries(Object.entries(x).map(([k, v]) => [k, describe(v, depth + 1, contents)])) }
    return { opaque: String(x) }
  }
  const originals = new Map<string, (...args: unknown[]) => unknown>()
  for (const name of Object.keys(raw)) {
    const f = raw[name]
    if (typeof f !== 'function' || name === 'NativeTensor' || name in notFuzzed(device) || GRAPH_FUNCTIONS.includes(name)) continue
    originals.set(name, f)
    raw[name] = function (this: unknown, ...args: unknown[]) {
      const calls = recorded.get(name) ?? new Map<string, Described[]>()
      recorded.set(name, calls)
      const key = JSON.stringify(args.map((a) => describe(a)))
      // (the contents are read before the call, which may write them)
      const kept = calls.size < CALLS_PER_FUNCTION && !calls.has(key) && key.length < 200_000
      if (kept)
        calls.set(
          key,
          args.map((a) => describe(a, 0, true)),
        )
      return f.apply(this, args)
    }
  }
  try {
    await workload(device)
  } finally {
    for (const [name, f] of originals) raw[name] = f
  }

  const traceFd = openSync(tracePath, 'w')
  const made: InstanceType<typeof addon.NativeTensor>[] = []
  // bits: the recorded contents (a mutated shape gets values of its own).
  const tensor = (shape: number[], on: 'cpu' | 'cuda' = 'cpu', bits?: number[]) => {
    const x = new addon.NativeTensor(shape, on)
    const n = shape.reduce((a, b) => a * b, 1)
    if (bits?.length === n && n > 0) x.copyFrom(new Float32Array(Uint32Array.from(bits).buffer))
    else if (n > 0) x.copyFrom(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + shape.length)))
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
      const x = tensor(d.disposed, d.cuda ? 'cuda' : 'cpu')
      x.dispose()
      return x
    }
    if ('viewOf' in d) return tensor([d.viewOf.reduce((a, b) => a * b, 1) + 7], d.cuda ? 'cuda' : 'cpu').view(7, d.viewOf)
    if ('tensor' in d) return tensor(d.tensor, d.cuda ? 'cuda' : 'cpu', d.bits)
    if ('typed' in d) {
      const Typed = typedArrays[d.typed]
      if (!Typed) throw new TypeError(`the fuzz rebuilds no ${d.typed}`) // (would count as a call that threw)
      return new Typed(d.data)
    }
    if ('array' in d) return d.array.map((e) => build(e, args))
    if ('object' in d) return Object.fromEntries(Object.entries(d.object).map(([k, v]) => [k, build(v, args)]))
    if ('v' in d) return d.u ? undefined : d.v
    if ('big' in d) return BigInt(d.big)
    return undefined
  }
  const numbers = [-1, 0, 1, 0.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 32 + 1, 2 ** 53, -(2 ** 53), 1e30]
  const others: Variant[] = [{ v: null, u: true }, { v: null }, { v: true }, { v: 'x' }, { object: {} }, { array: [] }, { tensor: [1] }]
  const variants = (d: Described): Variant[] => {
    const out: Variant[] = []
    if ('tensor' in d) {
      const s = d.tensor
      const on = (shape: number[]): Variant => (d.cuda ? { tensor: shape, cuda: true } : { tensor: shape })
      s.forEach((n, i) => {
        out.push(on(s.map((v, j) => (j === i ? n + 1 : v))), on(s.map((v, j) => (j === i ? 0 : v))))
        if (n > 1) out.push(on(s.map((v, j) => (j === i ? n - 1 : v))))
      })
      out.push(on([...s, 1]), on(s.length > 1 ? s.slice(1) : [1]), on([s.reduce((a, b) => a * b, 1)]))
      out.push({ disposed: s, cuda: d.cuda }, { viewOf: s, cuda: d.cuda })
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
    } else if ('big' in d) {
      for (const n of [-1n, 0n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -(2n ** 64n), BigInt(d.big) + 1n]) out.push({ big: n.toString() })
      for (const n of [0, 1, 2 ** 53, -1, NaN]) out.push({ v: n })
    } else if ('v' in d && typeof d.v === 'number') {
      for (const n of [...numbers, d.v + 1, d.v - 1]) out.push({ v: n })
    }
    return out
  }
  let calls = 0
  let returned = 0
  const notErrors: string[] = []
  const kernelFaults: string[] = []
  // What the call threw (null: it returned).
  const attempt = (what: string, call: () => unknown): unknown => {
    writeSync(traceFd, what + '\n')
    calls++
    let thrown: unknown = null
    try {
      call()
      returned++
    } catch (e) {
      thrown = e
      if (!(e instanceof Error) || !e.message) notErrors.push(`${what}: threw ${String(e)}`)
      else if (KERNEL_FAULT.test(e.message)) kernelFaults.push(`${what}: ${e.message.split('\n')[0]}`)
    }
    for (const x of made.splice(0)) if (!x.disposed) x.dispose()
    return thrown
  }
  const show = (v: Variant) => JSON.stringify(v).slice(0, 120)
  // Each recorded call rebuilt as recorded must run: else its mutations would only test the rebuild's flaw.
  const unfaithful: string[] = []
  for (const [name, list] of recorded)
    for (const call of list.values()) {
      const thrown = attempt(`${name} as recorded`, () => {
        const args: unknown[] = []
        call.forEach((d) => args.push(build(d, args)))
        return raw[name](...args)
      })
      if (thrown !== null) unfaithful.push(`${name}: ${thrown instanceof Error ? thrown.message : String(thrown)}`)
    }
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
  // CUDA: each CUDA tensor in a call that holds another (an argument, or inside an option object or array) as the
  // same shape on the CPU, the rest as recorded: a call mixing devices.
  let swaps = 0
  const mixedAccepted = new Set<string>()
  const mixedErrors = new Set<string>()
  // The paths to a described value's CUDA tensors, and the value with the tensor at a path moved to the CPU.
  const cudaPaths = (d: Described, at: (string | number)[] = []): (string | number)[][] => {
    if ('tensor' in d) return d.cuda ? [at] : []
    if ('array' in d) return d.array.flatMap((e, i) => cudaPaths(e, [...at, i]))
    if ('object' in d) return Object.entries(d.object).flatMap(([k, e]) => cudaPaths(e, [...at, k]))
    return []
  }
  const onCpu = (d: Described, at: (string | number)[]): Described => {
    if (at.length === 0) return 'tensor' in d ? { tensor: d.tensor, bits: d.bits } : d
    const [head, ...rest] = at
    if ('array' in d) return { array: d.array.map((e, i) => (i === head ? onCpu(e, rest) : e)) }
    if ('object' in d) return { object: { ...d.object, [head]: onCpu(d.object[head as string], rest) } }
    return d
  }
  if (device === 'cuda')
    for (const [name, list] of recorded)
      for (const call of list.values()) {
        const paths = call.flatMap((d, i) => cudaPaths(d, [i]))
        if (paths.length < 2) continue // one CUDA tensor: on the CPU, the whole call runs there
        for (const [i, ...inner] of paths) {
          const where = `${name} argument ${[i, ...inner].join('.')}`
          swaps++
          const thrown = attempt(`${where}: on the CPU`, () => {
            const args: unknown[] = []
            call.forEach((e, j) => args.push(build(j === i ? onCpu(e, inner) : e, args)))
            return raw[name](...args)
          })
          if (thrown === null) mixedAccepted.add(where)
          else if (thrown instanceof Error) mixedErrors.add(`${name}: ${thrown.message}`)
        }
      }
  const graphs = device === 'cuda' ? fuzzGraphs(raw, { attempt, tensor, build, variants, others, numbers }) : { calls: 0, unfaithful: [] }
  unfaithful.push(...graphs.unfaithful)
  const graphCalls = graphs.calls
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
    ['cuda'],
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
    // (tensor arguments made inside each attempt, which disposes what it made)
    for (const args of [
      ...methodArgs.map((a) => () => a),
      () => [tensor([6], device)],
      () => [tensor([2, 3], device)],
      () => [tensor([7], device)],
      () => [tensor([2, 3])],
    ])
      for (const disposedFirst of [false, true])
        attempt(`NativeTensor[2, 3]${disposedFirst ? ' (disposed)' : ''}.${method}(${args().length} arguments)`, () => {
          tensorCalls++
          const x = tensor([2, 3], device)
          if (disposedFirst) x.dispose()
          return (x as unknown as Record<string, (...a: unknown[]) => unknown>)[method](...args())
        })
  // On a GPU a kernel's fault is reported when the host next waits for the device.
  if (device === 'cuda') attempt('a final read of a CUDA tensor', () => tensor([4], 'cuda').toFloat32Array())
  closeSync(traceFd)
  return {
    calls,
    returned,
    notErrors,
    kernelFaults,
    fuzzed: [...recorded.keys(), ...(graphCalls > 0 ? GRAPH_FUNCTIONS : [])],
    tensorCalls,
    graphCalls,
    unfaithful,
    swaps,
    mixedAccepted: [...mixedAccepted],
    mixedErrors: [...mixedErrors],
  }
}

interface FuzzKit {
  attempt: (what: string, call: () => unknown) => unknown
  tensor: (shape: number[], on?: 'cpu' | 'cuda') => InstanceType<typeof addon.NativeTensor>
  build: (d: Variant, args: unknown[]) => unknown
  variants: (d: Described) => Variant[]
  others: Variant[]
  numbers: number[]
}

/**
 * The step graphs' five functions, one argument mutated at a time. Each attempt makes a session whose one graph
 * holds an embedding forward and backward (ids that index tables: a replay given ids out of range must be refused
 * before it runs, as the eager ops refuse them) and the gradient norm's sum of squares (a result to read back),
 * launches it once, makes the mutated call and frees what it made. A session argument is also given freed, as
 * another object, a tensor or a number; the record function as a value of another kind, one that throws, one that
 * reads the device and one that passes host arrays not bound to the session. And a launch after each of the graph's
 * tensors was disposed. Returns the number of calls made, and the valid calls that threw (with their errors).
 */
function fuzzGraphs(raw: Record<string, (...args: unknown[]) => unknown>, kit: FuzzKit): { calls: number; unfaithful: string[] } {
  const { attempt, tensor, build, variants, others, numbers } = kit
  const describe = (x: unknown): Described =>
    x instanceof addon.NativeTensor
      ? { tensor: x.shape, cuda: true }
      : Array.isArray(x)
        ? { array: x.map(describe) }
        : typeof x === 'bigint'
          ? { big: x.toString() }
          : ArrayBuffer.isView(x)
            ? { typed: x.constructor.name, data: Array.from(x as unknown as ArrayLike<number>) }
            : { v: x as number | boolean }
  let calls = 0
  const sessions: unknown[] = []
  // A session with its graph (index 0) and one launch (ticket 0); the arrays it was made for.
  const fixture = () => {
    const arrays = [Int32Array.from([5, 5, 2, 7, 9, 3, 0, 1, 2, 3, 0, 0, 1, 1])]
    const [ids, posIds, typeIds] = [2, 6, 10].map((at) => arrays[0].subarray(at, at + 4))
    const [word, pos, type, out] = [tensor([16, 8], 'cuda'), tensor([6, 8], 'cuda'), tensor([2, 8], 'cuda'), tensor([4, 8], 'cuda')]
    const dtables = [tensor([16, 8], 'cuda'), tensor([6, 8], 'cuda'), tensor([2, 8], 'cuda')]
    const scale = tensor([1], 'cuda')
    const session = raw.graphSession([arrays[0].byteLength], 8) // (the graph, and graphCapture's second one)
    sessions.push(session)
    const record = () => {
      raw.embeddingForward(out, ids, posIds, typeIds, word, pos, type)
      raw.embeddingBackward(dtables[0], dtables[1], dtables[2], out, ids, posIds, typeIds)
      raw.clipGradScale(dtables[0], 1, scale)
    }
    const graph = raw.graphCapture(session, arrays, record) as number
    raw.graphLaunch(session, graph, arrays, 0n, 0, 1, [out])
    return { session, graph, arrays, record, readback: [out], tensors: [word, pos, type, out, ...dtables, scale] }
  }
  const freeAll = () => {
    for (const s of sessions.splice(0))
      try {
        raw.graphSessionFree(s)
      } catch {
        // (freed already, by the call under test)
      }
  }
  type Fixture = ReturnType<typeof fixture>
  // Each function's valid arguments, from a fixture; the positions holding a session, and the record function.
  const calls0: Record<string, { args: (f: Fixture) => unknown[]; sessionAt: number[]; recordAt?: number }> = {
    graphSession: { args: (f) => [[f.arrays[0].byteLength], 4, f.session], sessionAt: [2] },
    graphCapture: { args: (f) => [f.session, f.arrays, f.record], sessionAt: [0], recordAt: 2 },
    graphLaunch: { args: (f) => [f.session, f.graph, f.arrays, 3n, 1e-3, 2, f.readback, false], sessionAt: [0] },
    graphResults: { args: (f) => [f.session, 0], sessionAt: [0] },
    graphSessionFree: { args: (f) => [f.session], sessionAt: [0] },
  }
  const sessionVariants: ((f: Fixture) => unknown)[] = [
    () => {
      const s = raw.graphSession([4], 4)
      raw.graphSessionFree(s)
      return s
    },
    () => ({}),
    () => tensor([4], 'cuda'),
    () => 1,
    () => null,
    () => undefined,
  ]
  const recordVariants: ((f: Fixture) => unknown)[] = [
    () => () => {
      throw new Error('from the record function')
    },
    (f) => () => (f.readback[0] as InstanceType<typeof addon.NativeTensor>).toFloat32Array(),
    (f) => () =>
      raw.embeddingForward(
        f.readback[0],
        new Int32Array(4),
        new Int32Array(4),
        new Int32Array(4),
        ...[16, 6, 2].map((n) => tensor([n, 8], 'cuda')),
      ),
    () => () => 1,
  ]
  const unfaithful: string[] = []
  const run = (name: string, what: string, args: (f: Fixture) => unknown[]) => {
    calls++
    return attempt(`${name} ${what}`, () => {
      try {
        const r = raw[name](...args(fixture()))
        if (name === 'graphSession' && r !== undefined) sessions.push(r)
        return r
      } finally {
        freeAll()
      }
    })
  }
  // A replay after one of the graph's tensors was disposed (it would run on freed memory).
  for (let k = 0; k < 8; k++)
    run('graphLaunch', `after the graph's tensor ${k} was disposed`, (f) => {
      f.tensors[k].dispose()
      return calls0.graphLaunch.args(f)
    })
  for (const [name, spec] of Object.entries(calls0)) {
    const thrown = run(name, 'as made', spec.args)
    if (thrown !== null) unfaithful.push(`${name}: ${thrown instanceof Error ? thrown.message : String(thrown)}`)
    // (the length of the valid call's arguments, from a fixture made once for it)
    const n = (() => {
      try {
        return spec.args(fixture()).length
      } finally {
        freeAll()
      }
    })()
    for (let i = 0; i <= n; i++) {
      const replace = (value: (f: Fixture) => unknown) => (f: Fixture) => {
        const a = spec.args(f)
        a[i] = value(f)
        return a
      }
      if (i === n)
        run(
          name,
          'with an argument too many',
          replace(() => 0),
        )
      else if (spec.sessionAt.includes(i)) sessionVariants.forEach((v, k) => run(name, `argument ${i}: session variant ${k}`, replace(v)))
      else if (spec.recordAt === i) recordVariants.forEach((v, k) => run(name, `argument ${i}: record variant ${k}`, replace(v)))
      else {
        // (described from a fixture's valid value, rebuilt fresh in each attempt)
        const d = describe(spec.args(fixture())[i])
        freeAll()
        const mutations: Variant[] = [...variants(d), ...others, ...numbers.map((v) => ({ v }))]
        for (const m of mutations)
          run(
            name,
            `argument ${i}: ${JSON.stringify(m).slice(0, 120)}`,
            replace(() => build(m, [])),
          )
      }
    }
  }
  return { calls, unfaithful }
}

/** The library's own calls to the addon: whatever these run is what the fuzz mutates. */
async function workload(device: 'cpu' | 'cuda'): Promise<void> {
  const [
    { microModel },
    { BertModel },
    { namedConfig },
    { buildVocab, writeVocab },
    { train },
    ops,
    losses,
    { Tensor, nativeOf },
    { VectorIndex },
  ] = await Promise.all([
    import('./helpers/encoder-e2e.mjs'),
    import('../lib/model/bert.js'),
    import('../lib/model/config.js'),
    import('../lib/train/vocab.js'),
    import('../lib/train/train.js'),
    import('../lib/ops.js'),
    import('../lib/losses.js'),
    import('../lib/tensor.js'),
    import('../lib/embed/search.js'),
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
          device,
          precision,
          microBatch,
        })
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  // Ops and exports the training steps above do not call (on the fuzz's device; rc: on the CPU).
  const rc = (shape: number[], k = 1, on: 'cpu' | 'cuda' = 'cpu') =>
    Tensor.from(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.7 + k)),
      shape,
      on,
    )
  const r = (shape: number[], k = 1) => rc(shape, k, device)
  const x = r([6, 8])
  ops.layerNormApply(r([6, 8]), x, r([6]), r([6], 5), r([8]), r([8], 4))
  ops.geluForward(r([6, 8]), x)
  ops.geluBackward(r([6, 8]), x, r([6, 8], 6))
  ops.leadingColumns(r([6, 4]), x)
  ops.addLeadingColumns(r([6, 8]), r([6, 4]), 0.5)
  ops.scaleInplace(r([6, 8]), 0.5)
  ops.linearInt8Forward(rc([6, 5]), rc([6, 8]), ops.int8PackWeight(rc([5, 8], 2)), rc([5]), null) // CPU only
  ops.poolMeanForward(r([2, 8]), r([2, 3, 8]), Int32Array.from([1, 1, 0, 1, 0, 0]))
  ops.poolMeanBackward(r([2, 3, 8]), r([2, 8]), Int32Array.from([1, 1, 0, 1, 0, 0]))
  ops.poolMeanForward(r([2, 8]), r([2, 3, 8]), Int32Array.from([1, 1, 0, 1, 0, 0]), true)
  ops.poolMaxForward(r([2, 8]), r([2, 3, 8]), Int32Array.from([1, 1, 0, 1, 0, 0]))
  ops.poolMaxBackward(r([2, 3, 8]), r([2, 8]), r([2, 3, 8]), Int32Array.from([1, 1, 0, 1, 0, 0]))
  ops.gradSumSquares(r([40]))
  ops.clipGradNorm(r([40]), 1)
  losses.simcse(r([4, 8]), r([4, 8], 2))
  losses.cosent(r([4, 8]), r([4, 8], 2), Float32Array.from([1, 2, 3, 4]))
  losses.mse(r([4, 8]), new Float32Array(32))
  const [n1, n2, n0] = [r([4, 8]), r([4, 8], 2), r([4, 8], 3)].map((v) => nativeOf(v, 'arg'))
  const [g1, g2, g0] = [r([4, 8]), r([4, 8]), r([4, 8])].map((v) => nativeOf(v, 'arg'))
  addon.offDropoutUnfused(n1, n2, n0, 0.05, 1, g1, g2, g0)
  addon.offDropoutWorkspaceBytes(4, 8, device)
  addon.gemm(nativeOf(r([4, 5]), 'arg'), nativeOf(r([4, 8]), 'arg'), nativeOf(r([5, 8]), 'arg'), false, true, 1, 0, false)
  const [c, a, b] = [rc([4, 5]), rc([4, 8]), rc([5, 8])].map((v) => nativeOf(v, 'arg'))
  addon.gemm(c, a, b, false, true, 1, 0, false, 'bf16') // CPU only
  addon.philox4x32(1, 2, 3, 4, 5, 6)
  addon.attentionTakesBf16(32, 64)
  addon.attentionFormsProbs(32, 64)
  addon.int8Kernel()
  addon.backendOps(device)
  addon.tensorMemory()
  addon.bf16Counters()
  addon.gemmInfo()
  addon.cudaStatus()
  addon.unitRows(nativeOf(rc([4, 8]), 'arg')) // CPU only
  addon.searchTopK(nativeOf(rc([10, 8]), 'arg'), new Float32Array(16), 3, 0, 10, new Float32Array(6), new Int32Array(6))
  addon.hammingTopK(new Uint8Array(40), 4, new Uint8Array(8), 5, 0, 10, new Float32Array(10), new Int32Array(10))
  if (device === 'cuda') {
    // The benchmarks' GPU timers and kernel profile around a product (lib/bench/op-profile.ts's calls).
    addon.cudaTimerReset()
    const before = addon.cudaTimerMark()
    addon.cudaKernelProfileStart()
    addon.gemm(nativeOf(r([4, 5]), 'arg'), nativeOf(r([4, 8]), 'arg'), nativeOf(r([5, 8]), 'arg'), false, true, 1, 0, false)
    addon.cudaKernelProfileStop()
    addon.cudaTimerMark()
    // (from the first marker to itself: a replay after a reset has recorded one marker again)
    addon.cudaTimerElapsed(before, before)
  }
  const index = VectorIndex.from(rc([10, 8], 3).toFloat32Array(), 8, { device })
  index.search(rc([2, 8], 4).toFloat32Array(), { topK: 3 })
  index.dispose()
}
