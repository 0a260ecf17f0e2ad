// Lines of a user's text file (sentences to train on or encode, STS pairs), decoded one way for every
// reader: strict UTF-8, \n or \r\n endings, no byte-order mark. A file that breaks these rules is an
// error naming the line and byte, never text silently altered (U+FFFD) or lines silently merged (bare \r).
import { promises as fsp } from 'node:fs'

const utf8 = new TextDecoder('utf-8', { fatal: true })

export interface DecodedLine {
  text: string
  /** File offset of the text's first byte (after a byte-order mark). */
  start: number
  /** Byte length of the text (without the line ending). */
  bytes: number
}

/**
 * Decodes one line: `raw` is its bytes up to (not including) the \n, `offset` where they start in the
 * file, `lineNo` its 1-based number. A \r before the \n is dropped, as is a UTF-8 byte-order mark at
 * the start of the file. Throws, naming the file, on invalid UTF-8 (with the byte offset of the first
 * bad byte) and on a carriage return inside the line (old Mac line endings, which would otherwise make
 * the whole file one line).
 */
export function decodeLine(path: string, raw: Uint8Array, offset: number, lineNo: number): DecodedLine {
  let len = raw.length
  if (len > 0 && raw[len - 1] === 0x0d) len-- // \r\n line ending
  let body = raw.subarray(0, len)
  let start = offset
  if (offset === 0 && len >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) {
    body = body.subarray(3)
    start += 3
  }
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    throw new Error(`${path}: invalid UTF-8 on line ${lineNo} (byte offset ${start + firstInvalidUtf8(body)})`)
  }
  const cr = body.indexOf(0x0d)
  if (cr !== -1) {
    throw new Error(
      `${path}: line ${lineNo} holds a carriage return (byte offset ${start + cr}) that does not end the line: ` +
        `lines must end in \\n or \\r\\n (convert old Mac line endings with: tr '\\r' '\\n')`,
    )
  }
  return { text, start, bytes: body.length }
}

/** Every line of a small text file (blank ones included; a final newline adds no empty line), decoded by decodeLine. */
export async function readTextLines(path: string): Promise<string[]> {
  let buf: Buffer
  try {
    buf = await fsp.readFile(path)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw new Error(code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot read: ${(e as Error).message}`)
  }
  const lines: string[] = []
  for (let from = 0, lineNo = 1; from < buf.length; lineNo++) {
    let nl = buf.indexOf(0x0a, from)
    if (nl === -1) nl = buf.length
    lines.push(decodeLine(path, buf.subarray(from, nl), from, lineNo).text)
    from = nl + 1
  }
  return lines
}

/** Index of the first byte that starts an invalid UTF-8 sequence (only called once decoding failed). */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0
  while (i < b.length) {
    const c = b[i]
    let n: number, min: number
    if (c < 0x80) {
      i++
      continue
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1
      min = 0x80
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2
      min = 0x800
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3
      min = 0x10000
    } else return i
    if (i + n >= b.length) return i // truncated sequence
    let cp = c & (0x3f >> n)
    for (let k = 1; k <= n; k++) {
      if ((b[i + k] & 0xc0) !== 0x80) return i
      cp = (cp << 6) | (b[i + k] & 0x3f)
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i
    i += n + 1
  }
  return b.length
}

/**
 * The first non-blank line of a file, as far as its first `bytes` bytes hold it (a BOM dropped), with whether it was
 * cut there; null when the file cannot be read (its reader then names the problem).
 */
export async function firstLineOf(path: string, bytes = 1 << 16): Promise<{ line: string; cut: boolean } | null> {
  let head: string
  try {
    const fd = await fsp.open(path, 'r')
    try {
      const { buffer, bytesRead } = await fd.read(Buffer.alloc(bytes), 0, bytes, 0)
      head = buffer.subarray(0, bytesRead).toString('utf8')
    } finally {
      await fd.close()
    }
  } catch {
    return null
  }
  const lines = head.replace(/^\ufeff/, '').split('\n')
  const k = lines.findIndex((l) => l.trim() !== '')
  return k < 0 ? { line: '', cut: false } : { line: lines[k], cut: k === lines.length - 1 }
}
