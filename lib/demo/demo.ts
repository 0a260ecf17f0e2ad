// `npx simcsepp train` with no arguments: train a tiny BERT from scratch with SimCSE++ on WordNet's
// example sentences (they come with the install), and show what changed:
//   - retrieval over held-out word senses: for each held-out sense, its first example is the query
//     and its second the answer among all held-out answers (recall@1, MRR), before and after;
//   - nearest neighbours of a few held-out sentences, before and after.
// Everything is written to ./simcsepp-demo (the model loads with SentenceTransformer and AutoModel).
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { namedConfig, type NamedConfig } from '../bert-config.js'
import { BertModel } from '../model/bert.js'
import { Tokenizer } from '../tokenizer.js'
import { formatTable } from '../bench/table.js'
import { buildVocab, writeVocab } from '../train/vocab.js'
import { runTraining } from '../cli/train-command.js'
import { wordnetExamples, type Example } from './wordnet.js'

export interface DemoOptions {
  out?: string
  steps?: number
  seed?: number
  config?: NamedConfig
  device?: 'auto' | 'cpu' | 'cuda'
  /** Held-out senses for the retrieval score. Default 500. */
  heldOut?: number
  /** No terminal output (tests). */
  quiet?: boolean
}

export interface RetrievalScore {
  recallAt1: number
  mrr: number
}

export interface DemoResult {
  out: string
  before: RetrievalScore
  after: RetrievalScore
  trainSentences: number
  queries: number
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const a = xs.slice()
  let s = seed >>> 0 || 1
  for (let i = a.length - 1; i > 0; i--) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0
    const j = s % (i + 1)
    ;[a[i], a[j]] = [a[j], a[i]]
  }
  return a
}

/** Held-out senses with two examples each (query, answer); every other example is training data. */
export function splitExamples(examples: Example[], heldOut: number, seed: number) {
  const bySense = new Map<string, string[]>()
  for (const e of examples) {
    const list = bySense.get(e.synset) ?? []
    if (!list.includes(e.text)) list.push(e.text)
    bySense.set(e.synset, list)
  }
  const candidates = shuffled([...bySense.entries()].filter(([, l]) => l.length >= 2), seed).slice(0, heldOut)
  const held = new Set(candidates.map(([k]) => k))
  const queries = candidates.map(([, l]) => l[0])
  const answers = candidates.map(([, l]) => l[1])
  const heldText = new Set(candidates.flatMap(([, l]) => l))
  const train = [...new Set(examples.filter((e) => !held.has(e.synset) && !heldText.has(e.text)).map((e) => e.text))]
  return { train: shuffled(train, seed + 1), queries, answers }
}

async function embedAll(model: BertModel, tok: Tokenizer, sentences: string[], maxLength: number): Promise<Float32Array[]> {
  const out: Float32Array[] = []
  const H = model.config.hiddenSize
  for (let i = 0; i < sentences.length; i += 128) {
    const enc = await tok.encodeBatch(sentences.slice(i, i + 128), { maxLength })
    const z = model.embed(enc, 'mean')
    const flat = z.toFloat32Array()
    z.dispose()
    for (let r = 0; r < enc.shape[0]; r++) {
      const v = flat.slice(r * H, (r + 1) * H)
      const n = Math.hypot(...v) || 1
      out.push(v.map((x) => x / n))
    }
  }
  return out
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0)

export function retrieval(q: Float32Array[], a: Float32Array[]): RetrievalScore {
  let hits = 0, rr = 0
  q.forEach((qi, i) => {
    const target = dot(qi, a[i])
    const rank = 1 + a.reduce((n, aj, j) => n + (j !== i && dot(qi, aj) > target ? 1 : 0), 0)
    if (rank === 1) hits++
    rr += 1 / rank
  })
  return { recallAt1: (100 * hits) / q.length, mrr: rr / q.length }
}

function neighbours(q: Float32Array, a: Float32Array[], texts: string[], k: number): string[] {
  return a.map((v, j) => [dot(q, v), j] as [number, number]).sort((x, y) => y[0] - x[0]).slice(0, k)
    .map(([s, j]) => `${s.toFixed(2)}  ${texts[j]}`)
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const out = resolve(o.out ?? 'simcsepp-demo')
  const seed = o.seed ?? 42
  const print = (s = '') => { if (!o.quiet) process.stdout.write(s + '\n') }
  const { train, queries, answers } = splitExamples(wordnetExamples(), o.heldOut ?? 500, seed)
  await mkdir(out, { recursive: true })
  const dataFile = join(out, 'train-sentences.txt')
  await writeFile(dataFile, train.join('\n') + '\n')
  const vocabFile = join(out, 'vocab.txt')
  await writeVocab(vocabFile, buildVocab(train, 8000))
  const tok = await Tokenizer.load(vocabFile)
  const configName = o.config ?? 'tiny'
  const maxLen = 32
  print(`simcsepp demo: SimCSE++ on ${train.length} WordNet example sentences, a '${configName}' BERT from random initialisation`)
  print(`held out: ${queries.length} word senses with two examples each (query -> its sense's other example)\n`)

  const before = BertModel.create(namedConfig(configName, tok.vocabSize), { seed })
  const qBefore = await embedAll(before, tok, queries, maxLen), aBefore = await embedAll(before, tok, answers, maxLen)
  before.dispose()
  const steps = o.steps ?? 200
  await runTraining({
    config: configName, tokenizer: vocabFile, data: dataFile, out, steps, seed, device: o.device,
    // From scratch, a tiny model needs a larger step size than fine-tuning BERT (3e-5), and its CLS
    // vector starts out nearly the same for every sentence: mean pooling sees the words at once.
    lr: 1e-3, warmup: Math.floor(steps / 10), saveEvery: 100, evalEvery: 0, pooling: 'mean',
  }, o.quiet)
  const after = await BertModel.load(out)
  const qAfter = await embedAll(after, tok, queries, maxLen), aAfter = await embedAll(after, tok, answers, maxLen)
  after.dispose()

  const rb = retrieval(qBefore, aBefore), ra = retrieval(qAfter, aAfter)
  print('\nRetrieval of the held-out senses (query: one example, answer: the other example of the same sense):')
  print(formatTable(['model', 'recall@1 %', 'MRR'], [
    ['random init', rb.recallAt1.toFixed(1), rb.mrr.toFixed(3)],
    [`after ${steps} steps`, ra.recallAt1.toFixed(1), ra.mrr.toFixed(3)],
    ['chance', (100 / queries.length).toFixed(1), '-'],
  ]))
  for (const i of [0, 1, 2]) {
    print(`\nNearest held-out answers for: "${queries[i]}"  (true answer: "${answers[i]}")`)
    print('  before: ' + neighbours(qBefore[i], aBefore, answers, 3).join('\n          '))
    print('  after:  ' + neighbours(qAfter[i], aAfter, answers, 3).join('\n          '))
  }
  const result = { out, before: rb, after: ra, trainSentences: train.length, queries: queries.length }
  await writeFile(join(out, 'demo-results.json'), JSON.stringify(result, null, 2) + '\n')
  print(`\nThe model is in ${out} (config.json, model.safetensors, vocab.txt, tokenizer.json, sentence-transformers files).`)
  print(`Embed with it: npx simcsepp encode --model ${out} "a sentence" "another sentence"`)
  return result
}
