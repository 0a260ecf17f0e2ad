// The entries of a zip archive as torch.save (PyTorch >= 1.6) writes one: every record stored, not compressed, so an
// entry's bytes can be read in place. Read from the end: the end-of-central-directory record (and its zip64 form for
// archives past 4 GB or 65,535 entries), then the central directory, then each entry's local header for where its
// bytes start (the local header's name and extra field, which PyTorch pads to align the data, may differ in length
// from the central directory's). Only what such archives use is supported; anything else is an Error naming the file.
import type { FileHandle } from 'node:fs/promises'

export interface ZipEntry {
  name: string
  /** Where the entry's bytes start in the file, and how many there are. */
  offset: number
  size: number
}

const EOCD = 0x06054b50
const ZIP64_EOCD = 0x06064b50
const ZIP64_LOCATOR = 0x07064b50
const CENTRAL = 0x02014b50
const LOCAL = 0x04034b50

async function readAt(fh: FileHandle, position: number, length: number, path: string): Promise<Buffer> {
  const b = Buffer.alloc(length)
  let done = 0
  while (done < length) {
    const { bytesRead } = await fh.read(b, done, length - done, position + done)
    if (bytesRead === 0) throw new Error(`${path}: not a complete zip archive (it ends at byte ${position + done})`)
    done += bytesRead
  }
  return b
}

/** Whether the file starts as a zip archive does (a local file header). */
export async function isZip(fh: FileHandle): Promise<boolean> {
  const b = Buffer.alloc(4)
  const { bytesRead } = await fh.read(b, 0, 4, 0)
  return bytesRead === 4 && b.readUInt32LE(0) === LOCAL
}

/** The archive's entries by name. */
export async function zipEntries(fh: FileHandle, path: string): Promise<Map<string, ZipEntry>> {
  const fileSize = (await fh.stat()).size
  // The end record sits in the last 22 bytes plus a comment of up to 65,535.
  const tailLength = Math.min(fileSize, 22 + 65535)
  const tail = await readAt(fh, fileSize - tailLength, tailLength, path)
  let at = -1
  for (let i = tail.length - 22; i >= 0; i--)
    if (tail.readUInt32LE(i) === EOCD) {
      at = i
      break
    }
  if (at < 0) throw new Error(`${path}: not a zip archive (no end of central directory)`)
  let count = tail.readUInt16LE(at + 10)
  let dirSize = tail.readUInt32LE(at + 12)
  let dirOffset = tail.readUInt32LE(at + 16)
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    // zip64: the locator just before the end record points at the zip64 end record.
    if (at < 20 || tail.readUInt32LE(at - 20) !== ZIP64_LOCATOR) throw new Error(`${path}: a zip64 archive without its locator`)
    const z = await readAt(fh, Number(tail.readBigUInt64LE(at - 20 + 8)), 56, path)
    if (z.readUInt32LE(0) !== ZIP64_EOCD) throw new Error(`${path}: a zip64 archive without its end record`)
    count = Number(z.readBigUInt64LE(32))
    dirSize = Number(z.readBigUInt64LE(40))
    dirOffset = Number(z.readBigUInt64LE(48))
  }
  if (dirOffset + dirSize > fileSize) throw new Error(`${path}: its zip directory lies past the end of the file (truncated?)`)
  const dir = await readAt(fh, dirOffset, dirSize, path)
  const out = new Map<string, ZipEntry>()
  let p = 0
  for (let i = 0; i < count; i++) {
    if (p + 46 > dir.length || dir.readUInt32LE(p) !== CENTRAL) throw new Error(`${path}: a damaged zip directory (entry ${i})`)
    const method = dir.readUInt16LE(p + 10)
    let compressed = dir.readUInt32LE(p + 20)
    let size = dir.readUInt32LE(p + 24)
    const nameLength = dir.readUInt16LE(p + 28)
    const extraLength = dir.readUInt16LE(p + 30)
    const commentLength = dir.readUInt16LE(p + 32)
    let local = dir.readUInt32LE(p + 42)
    const name = dir.toString('utf8', p + 46, p + 46 + nameLength)
    // zip64 extra field (id 1): the 64-bit values of the fields saturated above, in this order.
    let e = p + 46 + nameLength
    const extraEnd = e + extraLength
    while (e + 4 <= extraEnd) {
      const id = dir.readUInt16LE(e)
      const len = dir.readUInt16LE(e + 2)
      if (id === 1) {
        let q = e + 4
        const next64 = () => {
          const v = Number(dir.readBigUInt64LE(q))
          q += 8
          return v
        }
        if (size === 0xffffffff) size = next64()
        if (compressed === 0xffffffff) compressed = next64()
        if (local === 0xffffffff) local = next64()
      }
      e += 4 + len
    }
    p = extraEnd + commentLength
    if (method !== 0 || compressed !== size)
      throw new Error(`${path}: entry ${name} is compressed (method ${method}); torch.save stores its records uncompressed`)
    const header = await readAt(fh, local, 30, path)
    if (header.readUInt32LE(0) !== LOCAL) throw new Error(`${path}: entry ${name} has no local header where the directory says`)
    const offset = local + 30 + header.readUInt16LE(26) + header.readUInt16LE(28)
    if (offset + size > fileSize) throw new Error(`${path}: entry ${name} runs past the end of the file (truncated?)`)
    out.set(name, { name, offset, size })
  }
  return out
}
