// The xoshiro128** generator behind the initialisation's Gaussian draws (init.ts), and a jump that advances
// its state by any number of steps in O(log n): the state transition is linear over GF(2), so n steps are
// the 128 x 128 bit matrix T^n, formed by repeated squaring. Loading a checkpoint that lacks a few tensors
// (the pooler, a new training head) uses it to give them the values a full initialisation with the same
// seed would, without drawing the hundred million values before them (about 6 s for bert-base).

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0

/** The output of state `st` (xoshiro128**'s scrambler), before the step. */
export function xoshiroOutput(st: Uint32Array): number {
  return Math.imul(rotl(Math.imul(st[1], 5) >>> 0, 7), 9) >>> 0
}

/** One state transition, in place. */
export function xoshiroStep(st: Uint32Array): void {
  const t = (st[1] << 9) >>> 0
  st[2] ^= st[0]
  st[3] ^= st[1]
  st[1] ^= st[2]
  st[0] ^= st[3]
  st[2] ^= t
  st[3] = rotl(st[3], 11)
}

/** out = M v, M stored as 128 columns of 4 words (column j: the image of state bit j). */
function apply(m: Uint32Array, v: Uint32Array, out: Uint32Array, outAt = 0): void {
  let a = 0,
    b = 0,
    c = 0,
    d = 0
  for (let j = 0; j < 128; j++) {
    if (((v[j >>> 5]! >>> (j & 31)) & 1) === 0) continue
    a ^= m[4 * j]!
    b ^= m[4 * j + 1]!
    c ^= m[4 * j + 2]!
    d ^= m[4 * j + 3]!
  }
  out[outAt] = a
  out[outAt + 1] = b
  out[outAt + 2] = c
  out[outAt + 3] = d
}

/** Advances `st` by `steps` transitions (a non-negative safe integer), in place. */
export function advanceXoshiro(st: Uint32Array, steps: number): void {
  if (!Number.isSafeInteger(steps) || steps < 0)
    throw new RangeError(`advanceXoshiro: steps must be a non-negative safe integer, got ${steps}`)
  if (steps < 256) {
    for (let i = 0; i < steps; i++) xoshiroStep(st)
    return
  }
  // T's columns: the transition applied to each unit state.
  let m = new Uint32Array(512)
  const unit = new Uint32Array(4)
  for (let j = 0; j < 128; j++) {
    unit.fill(0)
    unit[j >>> 5] = (1 << (j & 31)) >>> 0
    xoshiroStep(unit)
    m.set(unit, 4 * j)
  }
  const col = new Uint32Array(4)
  let squared = new Uint32Array(512)
  for (let n = steps; ;) {
    if (n % 2 === 1) {
      apply(m, st, col)
      st.set(col)
    }
    n = Math.floor(n / 2)
    if (n === 0) return
    for (let j = 0; j < 128; j++) apply(m, m.subarray(4 * j, 4 * j + 4), squared, 4 * j) // (T^k)^2's column j = T^k (T^k e_j)
    ;[m, squared] = [squared, m]
  }
}
