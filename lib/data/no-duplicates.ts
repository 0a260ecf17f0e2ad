// Batches without a repeated sentence (sentence-transformers' NoDuplicatesBatchSampler, which it recommends for
// in-batch-negative losses): with supervised data, the batch's other positives and hard negatives are each anchor's
// negatives, so a sentence met twice in one batch (a premise with two hypotheses in NLI data, an anchor mined with
// several hard negatives, a positive that is another example's negative) is contrasted against itself: a false
// negative. The epoch's shuffled order is rearranged so that each consecutive slice of `batchSize` examples (the
// batches BatchStream cuts) holds every sentence once, where the data allows it.
//
// Greedy, in the shuffled order: a batch takes the examples deferred by earlier batches that now fit (oldest first,
// at most SCAN_FACTOR·batchSize of them looked at), then the next examples of the order, deferring those that share
// a sentence with it. Only when neither fills it (the end of the epoch, or data dominated by one sentence) does it
// take deferred examples anyway; then each clashing example is swapped with one of an earlier batch where neither
// batch gets a repeat, and only what no swap mends is left as a repeat. Every example stays in the epoch exactly once, so
// the epoch's length and resume positions are unchanged; the order depends only on the data, the seed, the epoch and
// the batch size.

/** Deferred examples a batch looks at, in batches: bounds the work of data where most examples clash. */
const SCAN_FACTOR = 8

export interface NoDuplicatesResult {
  /** The examples in their new order. */
  order: Uint32Array
  /** Batches that still hold a repeated sentence (the data left no other choice). */
  batchesWithRepeats: number
}

/**
 * `order` rearranged into batches of `batchSize` whose examples share no sentence; `textsOf(i)` gives example i's
 * sentences (every column). The last batch may be shorter, as before.
 */
export function noDuplicateBatches(order: Uint32Array, batchSize: number, textsOf: (i: number) => readonly string[]): NoDuplicatesResult {
  const n = order.length
  const out = new Uint32Array(n)
  let written = 0
  let next = 0 // the first example of `order` not yet placed or deferred
  // Deferred examples, oldest first, from `head` on (a queue: the entries before head are spent).
  let deferred: number[] = []
  let head = 0
  const forced: number[] = [] // where the batches filled with clashing examples start
  while (written < n) {
    const size = Math.min(batchSize, n - written)
    const start = written
    const seen = new Set<string>()
    const fits = (i: number) => textsOf(i).every((s) => !seen.has(s))
    const take = (i: number) => {
      for (const s of textsOf(i)) seen.add(s)
      out[written++] = i
    }
    // Deferred examples first (the oldest SCAN_FACTOR·batchSize), so that none waits to the end of the epoch when
    // it need not; those that still clash keep their places at the front of the queue.
    const end = Math.min(deferred.length, head + SCAN_FACTOR * batchSize)
    const kept: number[] = []
    for (let k = head; k < end; k++) {
      const i = deferred[k]
      if (written - start < size && fits(i)) take(i)
      else kept.push(i)
    }
    head = end - kept.length
    for (let k = 0; k < kept.length; k++) deferred[head + k] = kept[k]
    while (written - start < size && next < n) {
      const i = order[next++]
      if (fits(i)) take(i)
      else deferred.push(i)
    }
    if (written - start < size) {
      // Nothing left that fits: the oldest deferred examples fill the batch, repeats and all (repaired below).
      forced.push(start)
      while (written - start < size) out[written++] = deferred[head++]
    }
    if (head > 4096 && head * 2 > deferred.length) {
      deferred = deferred.slice(head)
      head = 0
    }
  }
  for (const f0 of forced) repair(out, f0, batchSize, textsOf)
  const batchesWithRepeats = forced.filter((f0) => hasRepeat(counts(out, f0, batchSize, textsOf))).length
  return { order: out, batchesWithRepeats }
}

/** How often each sentence occurs in the batch starting at b0. */
function counts(out: Uint32Array, b0: number, batchSize: number, textsOf: (i: number) => readonly string[]): Map<string, number> {
  const c = new Map<string, number>()
  for (const i of out.subarray(b0, b0 + batchSize)) for (const s of textsOf(i)) c.set(s, (c.get(s) ?? 0) + 1)
  return c
}

const hasRepeat = (c: Map<string, number>) => [...c.values()].some((k) => k > 1)

/** Whether one of `texts` is in the batch `c` besides the sentences `leaving` (an example about to leave it). */
function clashes(c: Map<string, number>, texts: readonly string[], leaving: readonly string[]): boolean {
  return texts.some((s) => (c.get(s) ?? 0) - leaving.filter((x) => x === s).length > 0)
}

function move(c: Map<string, number>, out: readonly string[], into: readonly string[]): void {
  for (const s of out) c.set(s, c.get(s)! - 1)
  for (const s of into) c.set(s, (c.get(s) ?? 0) + 1)
}

/**
 * Swaps the clashing examples of a batch filled with repeats (at the end of the epoch, typically) with examples of
 * the batches before it, SCAN_FACTOR·batchSize of them at most, where the swap puts no repeat in either batch.
 */
function repair(out: Uint32Array, f0: number, batchSize: number, textsOf: (i: number) => readonly string[]): void {
  const f1 = Math.min(f0 + batchSize, out.length)
  const here = counts(out, f0, batchSize, textsOf)
  const earlier = new Map<number, Map<string, number>>()
  for (let p = f0; p < f1; p++) {
    const xt = textsOf(out[p])
    if (!clashes(here, xt, xt)) continue
    for (let q = f0 - 1; q >= Math.max(0, f0 - SCAN_FACTOR * batchSize); q--) {
      const yt = textsOf(out[q])
      const b0 = q - (q % batchSize)
      if (!earlier.has(b0)) earlier.set(b0, counts(out, b0, batchSize, textsOf))
      const there = earlier.get(b0)!
      if (clashes(here, yt, xt) || clashes(there, xt, yt)) continue
      move(here, xt, yt)
      move(there, yt, xt)
      ;[out[p], out[q]] = [out[q], out[p]]
      break
    }
  }
}
