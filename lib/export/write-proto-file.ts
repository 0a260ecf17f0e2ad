// Writes an encoded protobuf message (a ProtoWriter's parts) to a file without joining it in memory: small
// parts (tags, lengths, node and value names) are gathered into a 1 MB buffer, a deferred part (a weight)
// is made just before it is written and dropped after, so exporting bert-base holds one weight's bytes at a
// time instead of the 415 MB file and every weight's copy. The file is replaced atomically.
import { open } from 'node:fs/promises'
import { replaceFileAtomic } from '../util/atomic-write.js'
import { writeFully } from '../util/write-fully.js'
import { partBytes, type Part } from './protobuf.js'

const GATHER_BYTES = 1 << 20

/** Writes `parts` in order to `path` (temporary file, fsync, rename); returns the bytes written. */
export async function writeProtoFile(path: string, parts: readonly Part[]): Promise<number> {
  let total = 0
  await replaceFileAtomic(path, async (tmp) => {
    const fh = await open(tmp, 'w')
    try {
      const gather = new Uint8Array(GATHER_BYTES)
      let held = 0
      const flush = async () => {
        await writeFully(fh, gather.subarray(0, held))
        held = 0
      }
      for (const part of parts) {
        if (part instanceof Uint8Array && part.byteLength <= GATHER_BYTES - held) {
          gather.set(part, held)
          held += part.byteLength
          continue
        }
        await flush()
        await writeFully(fh, partBytes(part))
      }
      await flush()
      total = parts.reduce((n, p) => n + p.byteLength, 0)
      await fh.sync()
    } finally {
      await fh.close()
    }
  })
  return total
}
