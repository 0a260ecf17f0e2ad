// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78), the checksum of TFRecord framing (TensorBoard's event
// files): one table of 256 entries, a byte at a time.
const TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

/** TFRecord's masked CRC: rotated right by 15 bits plus a constant, so that a CRC of CRCs is not trivially one. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes)
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0
}
