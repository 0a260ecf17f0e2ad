// Reads a safetensors file's tensors a chunk at a time instead of whole: the header first (checked exactly as
// parseSafetensors checks it), then the bytes of the tensors asked for, through one reused buffer, as fp32.
// BertModel.load puts a checkpoint's weights straight into the model's native memory this way. Reading a 440 MB
// bert-base file whole, copying it per tensor and then into a model-sized Float32Array cost seconds: every fresh
// large JavaScript buffer pays its page faults (about 1.2 s per 440 MB on the VMs this is developed on).
import { open, type FileHandle } from 'node:fs/promises'
import { decodeInto, dtypeBytes, headerLength, LITTLE_ENDIAN_HOST, parseSafetensorsHeader, type SafetensorsEntry } from './safetensors.js'

/** Elements per chunk handed to a reader's callback (4 MB of fp32). */
const CHUNK_ELEMENTS = 1 << 20

export class SafetensorsReader {
  /** The header's tensors by name. */
  readonly entries: ReadonlyMap<string, SafetensorsEntry>
  private values: Float32Array | null = null
  private bytes: Uint8Array | null = null

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    entries: SafetensorsEntry[],
    readonly metadata: Record<string, string>,
    private readonly dataStart: number,
  ) {
    this.entries = new Map(entries.map((e) => [e.name, e]))
  }

  /** Opens `path` and reads its header; errors name the file. Close the reader when done. */
  static async open(path: string): Promise<SafetensorsReader> {
    let fh: FileHandle
    try {
      fh = await open(path, 'r')
    } catch (e) {
      throw new Error(`${path}: cannot read safetensors file (${(e as Error).message})`)
    }
    try {
      const fileBytes = (await fh.stat()).size
      const first8 = new Uint8Array(8)
      await readFully(fh, first8.subarray(0, Math.min(8, fileBytes)), 0, path, 'the header length') // headerLength names a short file
      const headerLen = headerLength(first8, fileBytes, path)
      const headerBytes = new Uint8Array(headerLen)
      await readFully(fh, headerBytes, 8, path, 'the header')
      const h = parseSafetensorsHeader(headerBytes, fileBytes, path)
      return new SafetensorsReader(path, fh, h.entries, h.metadata, h.dataStart)
    } catch (e) {
      await fh.close()
      throw e
    }
  }

  /**
   * Reads tensor `name` as fp32 in order, calling `visit(values, at)` for each chunk: `values` holds elements
   * `at` .. `at + values.length - 1`, and its memory is reused once `visit` returns.
   */
  async read(name: string, visit: (values: Float32Array, at: number) => void): Promise<void> {
    const e = this.entries.get(name)
    if (!e) throw new Error(`${this.path}: no tensor named ${JSON.stringify(name)}`)
    const size = dtypeBytes(e.dtype)
    const count = (e.end - e.begin) / size
    this.values ??= new Float32Array(CHUNK_ELEMENTS)
    const direct = e.dtype === 'F32' && LITTLE_ENDIAN_HOST // the file's bytes are the values: read them in place
    if (!direct) this.bytes ??= new Uint8Array(CHUNK_ELEMENTS * 8)
    for (let at = 0; at < count; at += CHUNK_ELEMENTS) {
      const n = Math.min(CHUNK_ELEMENTS, count - at)
      const values = this.values.subarray(0, n)
      const target = direct ? new Uint8Array(values.buffer, 0, 4 * n) : this.bytes!.subarray(0, n * size)
      await readFully(this.fh, target, this.dataStart + e.begin + at * size, this.path, `tensor "${name}"`)
      if (!direct) decodeInto(e.dtype, target, values)
      visit(values, at)
    }
  }

  async close(): Promise<void> {
    await this.fh.close()
  }
}

/** Fills `target` from `position` on; an Error when the file ends first (it shrank after its header was read). */
export async function readFully(fh: FileHandle, target: Uint8Array, position: number, path: string, what: string): Promise<void> {
  let done = 0
  while (done < target.byteLength) {
    const { bytesRead } = await fh.read(target, done, target.byteLength - done, position + done)
    if (bytesRead === 0) throw new Error(`${path}: the file ends at byte ${position + done}, inside ${what}: truncated while being read?`)
    done += bytesRead
  }
}
