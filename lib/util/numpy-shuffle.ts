// numpy's legacy random stream, as far as MTEB's classification draws use it: `np.random.RandomState(seed).shuffle(x)`
// (and `np.random.seed(seed); np.random.shuffle(x)`, the same stream). The generator is the 32-bit Mersenne Twister
// MT19937 seeded by init_genrand (numpy's legacy seeding of an integer seed); the shuffle is Fisher–Yates from the
// end: for i = n-1 down to 1, j in [0, i] by numpy's random_interval (a 32-bit draw masked to i's bit width, drawn
// again while above i), then x[i] and x[j] swapped. Checked against numpy itself (test/numpy-shuffle.test.ts).

const N = 624
const M = 397
const MATRIX_A = 0x9908b0df
const UPPER = 0x80000000
const LOWER = 0x7fffffff

/** MT19937 (Matsumoto & Nishimura), 32-bit outputs. */
export class MersenneTwister {
  private readonly mt = new Uint32Array(N)
  private index = N

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`)
    this.mt[0] = seed
    for (let i = 1; i < N; i++) {
      const prev = this.mt[i - 1] ^ (this.mt[i - 1] >>> 30)
      this.mt[i] = Math.imul(1812433253, prev) + i
    }
  }

  nextUint32(): number {
    if (this.index >= N) this.twist()
    let y = this.mt[this.index++]
    y ^= y >>> 11
    y ^= (y << 7) & 0x9d2c5680
    y ^= (y << 15) & 0xefc60000
    y ^= y >>> 18
    return y >>> 0
  }

  private twist(): void {
    const mt = this.mt
    for (let k = 0; k < N; k++) {
      const y = (mt[k] & UPPER) | (mt[(k + 1) % N] & LOWER)
      mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0)
    }
    this.index = 0
  }
}

/** A uniform integer in [0, max] as numpy's random_interval draws it (max below 2^32). */
function randomInterval(rng: MersenneTwister, max: number): number {
  if (max === 0) return 0
  let mask = max
  mask |= mask >>> 1
  mask |= mask >>> 2
  mask |= mask >>> 4
  mask |= mask >>> 8
  mask |= mask >>> 16
  let value: number
  do value = (rng.nextUint32() & mask) >>> 0
  while (value > max)
  return value
}

/** Shuffles `x` in place as `np.random.RandomState(seed).shuffle(x)` does. */
export function numpyShuffle<T>(x: { length: number; [i: number]: T }, seed: number): void {
  const rng = new MersenneTwister(seed)
  for (let i = x.length - 1; i > 0; i--) {
    const j = randomInterval(rng, i)
    const t = x[i]
    x[i] = x[j]
    x[j] = t
  }
}
