// A restricted reader of Python's pickle format (protocols 0-5), enough for what torch.save writes: the opcodes of
// dicts, lists, tuples, numbers, strings and bytes, the memo, persistent ids (torch's storages) and REDUCE/BUILD of the
// callables the caller allows. Unlike Python's pickle.load it runs no code: a global it does not know (anything but
// what a state dict holds) is an Error, so a file crafted to run a command when unpickled is refused, not obeyed.
// Values: null, booleans, numbers (integers past 2^53 as bigint), strings, Uint8Array (bytes), arrays (lists and
// tuples), PyDict (dicts, OrderedDicts), PyGlobal (a named callable or class, until called), and what the caller's
// handlers return.

/** A module-level name the pickle refers to ('torch._utils._rebuild_tensor_v2'). */
export class PyGlobal {
  constructor(readonly name: string) {}
}

/** A dict (or OrderedDict): its items in insertion order. Keys are strings or numbers in what torch writes. */
export class PyDict {
  readonly items = new Map<unknown, unknown>()
}

export interface UnpickleHandlers {
  /** The object a persistent id (torch: ('storage', type, key, location, numel[, view])) stands for. */
  persistentLoad(pid: unknown): unknown
  /** The result of calling the allowed global `name` with `args` (REDUCE, NEWOBJ); throw to refuse. */
  call(name: string, args: unknown[]): unknown
  /** Globals that may appear (as arguments, or to be called): anything else is refused on sight. */
  allowed(name: string): boolean
}

/**
 * Unpickles one object from `data` starting at `start`; returns it and where its STOP ended (torch's legacy format
 * stores several pickles one after another). `what` names the data in errors.
 */
export function unpickle(data: Uint8Array, handlers: UnpickleHandlers, what: string, start = 0): { value: unknown; end: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const latin1 = new TextDecoder('latin1')
  const utf8 = new TextDecoder('utf-8', { fatal: true })
  let p = start
  const stack: unknown[] = []
  const marks: number[] = []
  const memo = new Map<number, unknown>()
  const fail = (why: string): never => {
    throw new Error(`${what}: ${why} (byte ${p})`)
  }
  const need = (n: number) => {
    if (p + n > data.length) fail('the pickle ends early (truncated?)')
  }
  const u8 = () => (need(1), data[p++])
  const u16 = () => (need(2), (p += 2), view.getUint16(p - 2, true))
  const u32 = () => (need(4), (p += 4), view.getUint32(p - 4, true))
  const u64 = () => {
    need(8)
    const v = view.getBigUint64(p, true)
    p += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('a length past 2^53')
    return Number(v)
  }
  const bytes = (n: number) => (need(n), (p += n), data.subarray(p - n, p))
  const line = () => {
    const end = data.indexOf(10, p)
    if (end < 0) fail('a text argument without its newline')
    const s = latin1.decode(data.subarray(p, end))
    p = end + 1
    return s
  }
  const text = (b: Uint8Array) => {
    try {
      return utf8.decode(b)
    } catch {
      return fail('a string that is not UTF-8')
    }
  }
  const pop = () => (stack.length ? stack.pop() : fail('a pickle that pops an empty stack'))
  const popMark = () => {
    const at = marks.pop()
    if (at === undefined) fail('a pickle without the MARK it needs')
    return stack.splice(at!)
  }
  const top = () => (stack.length ? stack[stack.length - 1] : fail('a pickle that reads an empty stack'))
  const global = (name: string) => (handlers.allowed(name) ? new PyGlobal(name) : fail(refusal(name)))
  const call = (f: unknown, args: unknown) => {
    if (!(f instanceof PyGlobal)) return fail('a call of something that is not a known global')
    if (!Array.isArray(args)) return fail(`${f.name} called without an argument tuple`)
    return handlers.call(f.name, args)
  }
  const long = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0
    let v = 0n
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i])
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length)
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v
  }
  const setItems = (target: unknown, kv: unknown[]) => {
    if (!(target instanceof PyDict)) fail('SETITEM on something that is not a dict')
    for (let i = 0; i + 1 < kv.length; i += 2) (target as PyDict).items.set(kv[i], kv[i + 1])
  }
  const append = (target: unknown, items: unknown[]) => {
    if (!Array.isArray(target)) fail('APPEND on something that is not a list')
    ;(target as unknown[]).push(...items)
  }
  for (;;) {
    const op = u8()
    switch (op) {
      case 0x80: // PROTO
        u8()
        break
      case 0x95: // FRAME
        u64()
        break
      case 0x2e: // STOP
        return { value: pop(), end: p }
      case 0x28: // MARK
        marks.push(stack.length)
        break
      case 0x30: // POP
        pop()
        break
      case 0x31: // POP_MARK
        popMark()
        break
      case 0x32: // DUP
        stack.push(top())
        break
      case 0x4e: // NONE
        stack.push(null)
        break
      case 0x88: // NEWTRUE
        stack.push(true)
        break
      case 0x89: // NEWFALSE
        stack.push(false)
        break
      case 0x4a: // BININT
        need(4)
        stack.push(view.getInt32(p, true))
        p += 4
        break
      case 0x4b: // BININT1
        stack.push(u8())
        break
      case 0x4d: // BININT2
        stack.push(u16())
        break
      case 0x8a: // LONG1
        stack.push(long(bytes(u8())))
        break
      case 0x8b: // LONG4
        stack.push(long(bytes(u32())))
        break
      case 0x49: {
        // INT (text; "00" and "01" are protocol 0's booleans)
        const s = line()
        stack.push(s === '00' ? false : s === '01' ? true : Number.parseInt(s, 10))
        break
      }
      case 0x4c: // LONG (text)
        stack.push(Number.parseInt(line().replace(/L$/, ''), 10))
        break
      case 0x47: // BINFLOAT (big-endian)
        need(8)
        stack.push(view.getFloat64(p, false))
        p += 8
        break
      case 0x46: // FLOAT (text)
        stack.push(Number.parseFloat(line()))
        break
      case 0x58: // BINUNICODE
        stack.push(text(bytes(u32())))
        break
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(bytes(u8())))
        break
      case 0x8d: // BINUNICODE8
        stack.push(text(bytes(u64())))
        break
      case 0x54: // BINSTRING (Python 2 str)
        stack.push(latin1.decode(bytes(u32())))
        break
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(bytes(u8())))
        break
      case 0x42: // BINBYTES
        stack.push(bytes(u32()).slice())
        break
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8()).slice())
        break
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(bytes(u64()).slice())
        break
      case 0x29: // EMPTY_TUPLE
        stack.push([])
        break
      case 0x74: // TUPLE
        stack.push(popMark())
        break
      case 0x85: // TUPLE1
        stack.push([pop()])
        break
      case 0x86: {
        // TUPLE2
        const b = pop()
        stack.push([pop(), b])
        break
      }
      case 0x87: {
        // TUPLE3
        const c = pop()
        const b = pop()
        stack.push([pop(), b, c])
        break
      }
      case 0x5d: // EMPTY_LIST
        stack.push([])
        break
      case 0x6c: // LIST
        stack.push(popMark())
        break
      case 0x61: {
        // APPEND
        const v = pop()
        append(top(), [v])
        break
      }
      case 0x65: {
        // APPENDS
        const items = popMark()
        append(top(), items)
        break
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict())
        break
      case 0x64: {
        // DICT
        const d = new PyDict()
        setItems(d, popMark())
        stack.push(d)
        break
      }
      case 0x73: {
        // SETITEM
        const v = pop()
        const k = pop()
        setItems(top(), [k, v])
        break
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark()
        setItems(top(), kv)
        break
      }
      case 0x63: {
        // GLOBAL
        const module = line()
        stack.push(global(`${module}.${line()}`))
        break
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop()
        const module = pop()
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL without a module and a name')
        stack.push(global(`${module as string}.${name as string}`))
        break
      }
      case 0x52: {
        // REDUCE
        const args = pop()
        stack.push(call(pop(), args))
        break
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop()
        stack.push(call(pop(), args))
        break
      }
      case 0x62: // BUILD: the object's state (an OrderedDict's attributes, a tensor's): not needed for weights
        pop()
        break
      case 0x71: // BINPUT
        memo.set(u8(), top())
        break
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top())
        break
      case 0x70: // PUT
        memo.set(Number.parseInt(line(), 10), top())
        break
      case 0x94: // MEMOIZE
        memo.set(memo.size, top())
        break
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number.parseInt(line(), 10)
        if (!memo.has(k)) fail(`a memo entry ${k} that was never stored`)
        stack.push(memo.get(k))
        break
      }
      case 0x51: // BINPERSID
        stack.push(handlers.persistentLoad(pop()))
        break
      case 0x50: // PERSID
        stack.push(handlers.persistentLoad(line()))
        break
      default:
        fail(`an unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}`)
    }
    if (marks.length && marks[marks.length - 1] > stack.length) fail('a pickle that pops past its MARK')
  }
}

function refusal(name: string): string {
  return `refuses the global ${name}: a weight file holds tensors and their containers only, and unpickling anything else could run code`
}
