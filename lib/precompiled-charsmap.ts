// Checks a SentencePiece `precompiled_charsmap` (the Precompiled normalizer of XLM-R and other SentencePiece
// tokenizer.json files) before the tokenizers library reads it. That library (its spm_precompiled crate) aborts
// the whole process, a Rust panic nobody catches, on a charsmap it cannot parse and, later, on one whose trie
// sends a lookup outside the array or a replacement outside its strings; every other malformed part of a
// tokenizer.json is an error it returns. So this reads the blob as the crate does and walks every trie state
// an input can reach, checking each access the crate's lookups will make (tokenizer-preflight.ts calls it).
//
// Layout: a little-endian u32 trie size in bytes, that many bytes of darts-clone double-array units (whole
// u32s), then the replacement strings (UTF-8, each ending in a NUL). A lookup of text bytes c1 c2 ... starts
// at p = offset(unit[0]) and for each byte does p ^= c; u = unit[p]; stop unless label(u) == c; p ^= offset(u);
// where u has a leaf, unit[p]'s value is the byte index of the replacement, and the matched bytes so far are
// the prefix it replaces (so they must end on a character boundary of the text, which is valid UTF-8).

const HAS_LEAF = 1 << 8

function label(u: number): number {
  return u & 0x800000ff // bit 31 and the low byte, as the crate compares them
}

function offset(u: number): number {
  return (u >>> 10) * ((u & (1 << 9)) !== 0 ? 256 : 1)
}

/** Continuation bytes still owed after `b` from UTF-8 state `owed`, or -1 where a valid text has no such byte. */
function nextUtf8State(owed: number, b: number): number {
  if (owed > 0) return b >= 0x80 && b <= 0xbf ? owed - 1 : -1
  if (b >= 0x01 && b <= 0x7f) return 0 // NUL ends a lookup
  if (b >= 0xc2 && b <= 0xdf) return 1
  if (b >= 0xe0 && b <= 0xef) return 2
  if (b >= 0xf0 && b <= 0xf4) return 3
  return -1
}

/** Why the tokenizers library would fail on this charsmap (base64 text), or null when it reads it safely. */
export function precompiledCharsmapProblem(base64: unknown): string | null {
  if (typeof base64 !== 'string') return `is ${base64 === null ? 'null' : typeof base64}, not a base64 string`
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64.length % 4 !== 0) return 'is not base64'
  const bytes = Buffer.from(base64, 'base64')
  if (bytes.length < 4) return `holds ${bytes.length} bytes, fewer than its 4-byte trie size`
  const units = Math.floor(bytes.readUInt32LE(0) / 4)
  if (4 + 4 * units > bytes.length) return `announces a ${4 * units}-byte trie in ${bytes.length - 4} bytes`
  const strings = bytes.subarray(4 + 4 * units)
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(strings)
  } catch {
    return 'ends in replacement strings that are not UTF-8'
  }
  if (units === 0) return 'has an empty trie'
  const unit = (p: number) => bytes.readUInt32LE(4 + 4 * p)
  // A walk over the states (position, UTF-8 bytes owed) a text can reach: a state's accesses depend on nothing else.
  const seen = new Set<number>()
  const queue: [number, number][] = [[offset(unit(0)), 0]]
  while (queue.length) {
    const [p, owed] = queue.pop()!
    const key = p * 4 + owed
    if (seen.has(key)) continue
    seen.add(key)
    for (let c = 1; c < 256; c++) {
      const state = nextUtf8State(owed, c)
      if (state < 0) continue
      const q = p ^ c
      if (q >= units) return `sends byte ${c} to unit ${q} of ${units}`
      const u = unit(q)
      if (label(u) !== c) continue
      const next = q ^ offset(u)
      if ((u & HAS_LEAF) !== 0) {
        if (next >= units) return `has a leaf at unit ${next} of ${units}`
        const at = unit(next) & 0x7fffffff
        if (at > strings.length) return `points at byte ${at} of ${strings.length} replacement bytes`
        if (at < strings.length && (strings[at] & 0xc0) === 0x80) return `points into a character at byte ${at}`
        if (state !== 0) return 'replaces part of a character'
      }
      queue.push([next, state])
    }
  }
  return null
}
