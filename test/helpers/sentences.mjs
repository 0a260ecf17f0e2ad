// Sentences from a small grammar for tiny training runs. Plain JavaScript (no tap) so that
// scripts/gpu-check.mjs can load it on a GPU machine too; test/helpers/train-corpus.ts re-exports it.
import { writeFileSync } from 'node:fs'

export const WORDS = ['the', 'a', 'cat', 'dog', 'bird', 'sees', 'likes', 'red', 'small', 'house', 'tree', 'river']

/**
 * Writes `count` sentences of 4 to 9 of WORDS (a seeded LCG) to `path`; returns the path.
 * @param {string} path
 * @param {number} count
 * @returns {string}
 */
export function writeSentences(path, count, seed = 11) {
  let s = seed
  const rnd = (/** @type {number} */ n) => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % n
  const lines = Array.from({ length: count }, () => Array.from({ length: 4 + rnd(6) }, () => WORDS[rnd(WORDS.length)]).join(' '))
  writeFileSync(path, lines.join('\n') + '\n')
  return path
}
