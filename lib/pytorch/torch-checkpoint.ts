// PyTorch weight files (pytorch_model.bin: a state dict saved by torch.save) read without Python, a tensor at a time,
// as SafetensorsReader reads safetensors. Both of torch.save's formats:
//   - zip (PyTorch >= 1.6): ARCHIVE/data.pkl, the pickled dict whose tensors point at storages by key, and each
//     storage's bytes in ARCHIVE/data/KEY (stored uncompressed: read in place; ARCHIVE/byteorder must be 'little');
//   - legacy (before 1.6): the pickles of a magic number, the protocol version (1001) and the system's sizes, then the
//     dict, then the sorted list of storage keys, then each storage as its element count (int64) and its bytes.
// A tensor is torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) in the pickle: its values are
// storage[offset + sum(index * stride)]. Only the globals a state dict holds are allowed (unpickle.ts): anything else
// is refused, not run.
import { open, type FileHandle } from 'node:fs/promises'
import { decodeInto, dtypeBytes, type Dtype, type SafetensorsEntry } from '../safetensors.js'
import { readFully } from '../safetensors-reader.js'
import { PyDict, PyGlobal, unpickle, type UnpickleHandlers } from './unpickle.js'
import { isZip, zipEntries } from './zip-entries.js'

/** torch's storage classes and the element type they hold. */
const STORAGE_DTYPES: Record<string, Dtype> = {
  'torch.FloatStorage': 'F32',
  'torch.DoubleStorage': 'F64',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
  'torch.ShortStorage': 'I16',
  'torch.CharStorage': 'I8',
  'torch.ByteStorage': 'U8',
  'torch.BoolStorage': 'BOOL',
}
const REBUILDERS = new Set([
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
])
const ALLOWED = new Set([...Object.keys(STORAGE_DTYPES), ...REBUILDERS, 'collections.OrderedDict', '_codecs.encode'])
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn

/** Elements per chunk handed to a reader's callback (4 MB of fp32), as SafetensorsReader. */
const CHUNK_ELEMENTS = 1 << 20

interface Storage {
  key: string
  dtype: Dtype
  numel: number
  /** Where its bytes start in the file (legacy views: the root's start plus the view's offset). */
  fileOffset: number
}

class Tensor {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

export class TorchCheckpointReader {
  /** The state dict's tensors by name; begin/end: the bytes of a contiguous tensor in the file (-1 otherwise). */
  readonly entries: ReadonlyMap<string, SafetensorsEntry>
  private values: Float32Array | null = null

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly tensors: Map<string, Tensor>,
  ) {
    this.entries = new Map(
      [...tensors].map(([name, t]) => {
        const size = dtypeBytes(t.storage.dtype)
        const begin = contiguous(t) ? t.storage.fileOffset + t.offset * size : -1
        return [name, { name, dtype: t.storage.dtype, shape: t.shape, begin, end: begin < 0 ? -1 : begin + numel(t.shape) * size }]
      }),
    )
  }

  /** Opens `path`, reads its pickled dict and checks every tensor lies inside its storage; errors name the file. */
  static async open(path: string): Promise<TorchCheckpointReader> {
    let fh: FileHandle
    try {
      fh = await open(path, 'r')
    } catch (e) {
      throw new Error(`${path}: cannot read PyTorch file (${(e as Error).message})`)
    }
    try {
      const tensors = (await isZip(fh)) ? await readZip(fh, path) : await readLegacy(fh, path)
      const fileSize = (await fh.stat()).size
      for (const [name, t] of tensors) {
        const last = t.offset + t.shape.reduce((s, n, i) => s + (n - 1) * t.stride[i], 0)
        if (t.shape.some((n) => n === 0)) continue
        if (t.offset < 0 || t.stride.some((s) => s < 0) || last >= t.storage.numel)
          throw new Error(`${path}: tensor '${name}' reaches element ${last} of a storage of ${t.storage.numel}`)
        if (t.storage.fileOffset + t.storage.numel * dtypeBytes(t.storage.dtype) > fileSize)
          throw new Error(`${path}: the storage of tensor '${name}' runs past the end of the file (truncated?)`)
      }
      return new TorchCheckpointReader(path, fh, tensors)
    } catch (e) {
      await fh.close()
      throw e
    }
  }

  /** Reads tensor `name` as fp32 in order, `visit(values, at)` per chunk (the memory is reused once it returns). */
  async read(name: string, visit: (values: Float32Array, at: number) => void): Promise<void> {
    const t = this.tensors.get(name)
    const e = this.entries.get(name)
    if (!t || !e) throw new Error(`${this.path}: no tensor named ${JSON.stringify(name)}`)
    const size = dtypeBytes(t.storage.dtype)
    const count = numel(t.shape)
    this.values ??= new Float32Array(CHUNK_ELEMENTS)
    if (e.begin >= 0) {
      const bytes = new Uint8Array(Math.min(CHUNK_ELEMENTS, count) * size)
      for (let at = 0; at < count; at += CHUNK_ELEMENTS) {
        const n = Math.min(CHUNK_ELEMENTS, count - at)
        await readFully(this.fh, bytes.subarray(0, n * size), e.begin + at * size, this.path, name)
        const values = this.values.subarray(0, n)
        decodeInto(t.storage.dtype, bytes.subarray(0, n * size), values)
        visit(values, at)
      }
      return
    }
    // A strided view (a transposed or sliced tensor): its storage's span read whole, its elements gathered in order.
    const last = t.offset + t.shape.reduce((s, n, i) => s + (n - 1) * t.stride[i], 0)
    const span = new Uint8Array((last - t.offset + 1) * size)
    await readFully(this.fh, span, t.storage.fileOffset + t.offset * size, this.path, name)
    const all = new Float32Array(last - t.offset + 1)
    decodeInto(t.storage.dtype, span, all)
    const index = new Array<number>(t.shape.length).fill(0)
    for (let at = 0; at < count; at += CHUNK_ELEMENTS) {
      const n = Math.min(CHUNK_ELEMENTS, count - at)
      const values = this.values.subarray(0, n)
      for (let i = 0; i < n; i++) {
        values[i] = all[index.reduce((s, k, d) => s + k * t.stride[d], 0)]
        for (let d = t.shape.length - 1; d >= 0 && ++index[d] === t.shape[d]; d--) index[d] = 0
      }
      visit(values, at)
    }
  }

  async close(): Promise<void> {
    await this.fh.close()
  }
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1)

/** Whether the tensor's elements are its storage's in row-major order from its offset. */
function contiguous(t: Tensor): boolean {
  let expected = 1
  for (let d = t.shape.length - 1; d >= 0; d--) {
    if (t.shape[d] !== 1 && t.stride[d] !== expected) return false
    expected *= t.shape[d]
  }
  return true
}

/** The unpickling rules of a state dict; `storageOf` turns a persistent id into its storage. */
function handlers(path: string, storageOf: (pid: unknown[]) => Storage): UnpickleHandlers {
  const ints = (v: unknown, what: string): number[] => {
    if (!Array.isArray(v) || !v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0))
      throw new Error(`${path}: a tensor's ${what} is not a tuple of non-negative integers`)
    return v as number[]
  }
  return {
    allowed: (name) => ALLOWED.has(name),
    persistentLoad: (pid) => {
      if (!Array.isArray(pid) || pid[0] !== 'storage') throw new Error(`${path}: a persistent id that is not a storage`)
      return storageOf(pid)
    },
    call: (name, args) => {
      if (name === 'collections.OrderedDict') return new PyDict()
      // (bytes, as protocol 2 pickles them under Python 3: _codecs.encode(text, 'latin1'))
      if (name === '_codecs.encode') return Uint8Array.from(Buffer.from(String(args[0]), 'latin1'))
      if (name === 'torch._utils._rebuild_parameter' || name === 'torch._utils._rebuild_parameter_with_state') return args[0]
      if (REBUILDERS.has(name)) {
        const [storage, offset, size, stride] = args
        if (!((storage as Storage)?.key !== undefined && Number.isSafeInteger(offset)))
          throw new Error(`${path}: ${name} without a storage and an offset`)
        const shape = ints(size, 'size')
        const strides = ints(stride, 'stride')
        if (strides.length !== shape.length) throw new Error(`${path}: a tensor with ${shape.length} sizes and ${strides.length} strides`)
        return new Tensor(storage as Storage, offset as number, shape, strides)
      }
      throw new Error(`${path}: ${name} cannot be called here`)
    },
  }
}

/** The dict's tensors by name (a dict of dicts, such as {'state_dict': ...}, is not a weight file). */
function tensorsOf(value: unknown, path: string): Map<string, Tensor> {
  if (!(value instanceof PyDict)) throw new Error(`${path}: holds no dict of tensors (a state dict) at its top`)
  const out = new Map<string, Tensor>()
  for (const [k, v] of value.items) if (typeof k === 'string' && v instanceof Tensor) out.set(k, v)
  if (!out.size) throw new Error(`${path}: its dict holds no tensors (a checkpoint of something else than a state dict?)`)
  return out
}

function storageDtype(type: unknown, path: string): Dtype {
  const dtype = type instanceof PyGlobal ? STORAGE_DTYPES[type.name] : undefined
  if (!dtype) throw new Error(`${path}: a storage of an unsupported type (${type instanceof PyGlobal ? type.name : String(type)})`)
  return dtype
}

async function readZip(fh: FileHandle, path: string): Promise<Map<string, Tensor>> {
  const entries = await zipEntries(fh, path)
  const pkl = [...entries.keys()].find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'))
  if (!pkl) throw new Error(`${path}: a zip archive without data.pkl: not a file torch.save wrote`)
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length)
  const order = entries.get(`${prefix}byteorder`)
  if (order) {
    const b = Buffer.alloc(order.size)
    await readFully(fh, b, order.offset, path, 'byteorder')
    if (b.toString() !== 'little') throw new Error(`${path}: saved on a ${b.toString()}-endian machine; only little-endian files are read`)
  }
  const pklEntry = entries.get(pkl)!
  const data = Buffer.alloc(pklEntry.size)
  await readFully(fh, data, pklEntry.offset, path, 'data.pkl')
  const storages = new Map<string, Storage>()
  const rules = handlers(path, (pid) => {
    const key = String(pid[2])
    const dtype = storageDtype(pid[1], path)
    const record = entries.get(`${prefix}data/${key}`)
    if (!record) throw new Error(`${path}: storage ${key} has no record data/${key}`)
    const numel = Number(pid[4])
    if (!Number.isSafeInteger(numel) || numel < 0 || numel * dtypeBytes(dtype) > record.size)
      throw new Error(`${path}: storage ${key} claims ${String(pid[4])} elements; its record holds ${record.size} bytes`)
    let s = storages.get(key)
    if (!s) storages.set(key, (s = { key, dtype, numel, fileOffset: record.offset }))
    return s
  })
  return tensorsOf(unpickle(data, rules, `${path} (data.pkl)`).value, path)
}

async function readLegacy(fh: FileHandle, path: string): Promise<Map<string, Tensor>> {
  const size = (await fh.stat()).size
  // The pickles are small beside the storages, but their length is only known once read: read ahead a growing prefix.
  let head = Buffer.alloc(0)
  const prefix = async (n: number) => {
    if (head.length < Math.min(n, size)) {
      head = Buffer.alloc(Math.min(size, Math.max(n, 2 * head.length, 1 << 20)))
      await readFully(fh, head, 0, path, 'its pickles')
    }
    return head
  }
  const noGlobals: UnpickleHandlers = {
    allowed: () => false,
    persistentLoad: () => {
      throw new Error(`${path}: not a PyTorch file`)
    },
    call: () => null,
  }
  // Each pickle is parsed again from a longer prefix while it runs past the bytes read so far.
  const next = async <T>(at: number, parse: (data: Uint8Array, at: number) => T): Promise<T> => {
    for (let n = 1 << 20; ; n *= 4) {
      const data = await prefix(at + n)
      try {
        return parse(data, at)
      } catch (e) {
        if (!/ends early/.test((e as Error).message) || data.length >= size) throw e
      }
    }
  }
  const first = await next(0, (d, at) => unpickle(d, noGlobals, path, at)).catch(() => null)
  if (first?.value !== LEGACY_MAGIC)
    throw new Error(`${path}: neither a zip archive nor a legacy torch.save file (no magic number): not a PyTorch weight file`)
  const version = await next(first.end, (d, at) => unpickle(d, noGlobals, path, at))
  if (version.value !== 1001) throw new Error(`${path}: legacy torch.save protocol ${String(version.value)}; only 1001 is read`)
  const sys = await next(version.end, (d, at) => unpickle(d, noGlobals, path, at))
  if (sys.value instanceof PyDict && sys.value.items.get('little_endian') === false)
    throw new Error(`${path}: saved on a big-endian machine; only little-endian files are read`)
  // Storages by key, with views (a legacy storage view: (root key, offset, size)) pointing into their root.
  const roots = new Map<string, Storage>()
  const views: [Storage, string, number][] = []
  const storageOf = (pid: unknown[]): Storage => {
    const key = String(pid[2])
    const dtype = storageDtype(pid[1], path)
    let root = roots.get(key)
    if (!root) roots.set(key, (root = { key, dtype, numel: Number(pid[4]), fileOffset: -1 }))
    const view = pid[5]
    if (!Array.isArray(view)) return root
    const [viewKey, offset, viewSize] = view as [unknown, number, number]
    const v: Storage = { key: String(viewKey), dtype, numel: Number(viewSize), fileOffset: -1 }
    views.push([v, key, Number(offset)])
    return v
  }
  const dict = await next(sys.end, (d, at) => unpickle(d, handlers(path, storageOf), path, at))
  const tensors = tensorsOf(dict.value, path)
  const keys = await next(dict.end, (d, at) => unpickle(d, noGlobals, path, at))
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string'))
    throw new Error(`${path}: the legacy storage key list is missing`)
  // The storages follow in the list's order: an int64 element count, then the bytes.
  let pos = keys.end
  const count = Buffer.alloc(8)
  for (const key of keys.value as string[]) {
    const s = roots.get(key)
    if (!s) throw new Error(`${path}: storage ${key} is stored but no tensor uses it`)
    await readFully(fh, count, pos, path, `storage ${key}'s length`)
    const n = Number(count.readBigInt64LE(0))
    if (n !== s.numel) throw new Error(`${path}: storage ${key} holds ${n} elements, its tensors say ${s.numel}`)
    s.fileOffset = pos + 8
    pos += 8 + n * dtypeBytes(s.dtype)
  }
  for (const s of roots.values()) if (s.fileOffset < 0) throw new Error(`${path}: storage ${s.key} is used but not stored`)
  for (const [v, rootKey, offset] of views) v.fileOffset = roots.get(rootKey)!.fileOffset + offset * dtypeBytes(v.dtype)
  return tensors
}

/** Every tensor of a (small) PyTorch weight file, whole, as fp32 with its shape. */
export async function readTorchTensors(path: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const reader = await TorchCheckpointReader.open(path)
  try {
    const out = new Map<string, { shape: number[]; data: Float32Array }>()
    for (const [name, e] of reader.entries) {
      const data = new Float32Array(numel(e.shape))
      await reader.read(name, (values, at) => data.set(values, at))
      out.set(name, { shape: e.shape, data })
    }
    return out
  } finally {
    await reader.close()
  }
}
