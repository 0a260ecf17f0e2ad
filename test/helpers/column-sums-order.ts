// The CUDA backend's orders of column sums (kernels/column_sums.cuh), in float64 as the kernels add them, so that
// tests can hold the device's bias gradients to exact bits:
//   chunked: rows in chunks of 128 (more past 65,535 chunks), a chunk's rows split over 8 lanes (lane y adds rows
//   y, y + 8, ... in order), the lanes added in order; then the chunks' sums the same way (lane y adding chunks y,
//   y + 8, ... in order from 0, the lanes added in order);
//   the attention's (kernels/attention.cu, dqkvColumnSums at bf16): each sentence's T rows added in order, then the
//   sentences' sums in the chunked order.
// A bias gradient then gets fround(start + fround(total)).

/** The chunked order's total of term(r) over rows r < R. */
export function chunkedSum(R: number, term: (r: number) => number): number {
  const chunkRows = Math.max(128, Math.ceil(R / 65535))
  const chunks: number[] = []
  for (let r0 = 0; r0 < R; r0 += chunkRows) chunks.push(laneSum(Math.min(R, r0 + chunkRows) - r0, (i) => term(r0 + i)))
  return laneSum(chunks.length, (k) => chunks[k])
}

/** The sum of x(i), i < n, over 8 lanes: lane y adds i = y, y + 8, ... in order from 0, the lanes added in order. */
function laneSum(n: number, x: (i: number) => number): number {
  const lanes = new Float64Array(8)
  for (let y = 0; y < 8; y++) for (let i = y; i < n; i += 8) lanes[y] += x(i)
  let s = lanes[0]
  for (let y = 1; y < 8; y++) s += lanes[y]
  return s
}

/** start + each column's chunked sum of x [R, C], as the device adds it into a bias gradient. */
export function chunkedColumnSums(x: Float32Array, R: number, C: number, start: number): Float32Array {
  return Float32Array.from({ length: C }, (_, c) => Math.fround(start + Math.fround(chunkedSum(R, (r) => x[r * C + c]))))
}

/** start + each column's sum of x [B * T, C] by sentence (T rows in order), then over sentences in the chunked order. */
export function sentenceColumnSums(x: Float32Array, B: number, T: number, C: number, start: number): Float32Array {
  const sentence = (b: number, c: number) => {
    let s = 0
    for (let r = b * T; r < (b + 1) * T; r++) s += x[r * C + c]
    return s
  }
  return Float32Array.from({ length: C }, (_, c) => Math.fround(start + Math.fround(chunkedSum(B, (b) => sentence(b, c)))))
}
