// FileHandle.write may write fewer bytes than asked: this loops until all of `data` is written.
import type { FileHandle } from 'node:fs/promises'

/** Writes all of `data` at `position` (or, without one, at the file's current position). */
export async function writeFully(fh: FileHandle, data: Uint8Array, position?: number): Promise<void> {
  for (let done = 0; done < data.byteLength;) {
    const at = position === undefined ? null : position + done
    const { bytesWritten } = await fh.write(data, done, data.byteLength - done, at)
    done += bytesWritten
  }
}
