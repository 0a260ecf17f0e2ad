// Summarization (`simcsepp eval --summarization`; MTEB's SummEval): each machine summary scored by its largest cosine
// (and dot product) to its text's human summaries, correlated per text with the people's relevance scores (Spearman,
// Pearson), averaged over the texts whose scores are not all equal. Held to MTEB's SummarizationEvaluator computed
// by numpy and scipy where python3 has them; readers and refusals.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { evaluateSummarization, readSummarizationSet, type SummarizationSet } from '../lib/eval/summarization.js'
import { tempDir } from './helpers/train-corpus.js'
import { numpyJson } from './helpers/numpy.js'

const dir = tempDir('simcsepp-summarization-')
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n'

/** Vectors of "v<k>" texts from a table of sines (dimension 5), so that the similarities are irregular. */
const DIM = 5
const vectorOf = (s: string) => Float32Array.from({ length: DIM }, (_, d) => Math.sin(Number(s.slice(1)) * 1.7 + d * 2.3) + 0.3)
const embed = async (texts: string[]) => texts.map(vectorOf)

const hasScipy = numpyJson('import scipy\nprint(json.dumps(1))') === 1

t.test(
  'MTEB’s SummarizationEvaluator, as numpy and scipy compute it',
  { skip: hasScipy ? false : 'python3 with scipy not found' },
  async (t) => {
    // 12 texts: 2-4 human summaries, 3-8 machine ones with tied relevance scores; text 4's scores all equal and text 7's
    // machine summaries one text (so one similarity): both skipped, as MTEB skips them.
    let k = 0
    const texts = Array.from({ length: 12 }, (_, i) => {
      const human = Array.from({ length: 2 + (i % 3) }, () => `v${k++}`)
      const n = 3 + ((i * 5) % 6)
      const machine = i === 7 ? Array(n).fill(`v${k++}`) : Array.from({ length: n }, () => `v${k++}`)
      const relevance = Array.from({ length: n }, (_, j) => (i === 4 ? 3 : 1 + ((j * 7 + i) % 4) * 1.25))
      return { human, machine, relevance }
    })
    const set: SummarizationSet = { name: 'synthetic', texts }
    const r = await evaluateSummarization(embed, set)
    const vec = (s: string) => Array.from(vectorOf(s))
    const want = numpyJson(
      [
        'from scipy.stats import pearsonr, spearmanr',
        `data = ${JSON.stringify(texts.map((x) => ({ h: x.human.map(vec), m: x.machine.map(vec), g: x.relevance })))}`,
        'out = {"cs": [], "cp": [], "ds": [], "dp": []}',
        'for t in data:',
        '    h = np.array(t["h"], dtype=np.float32).astype(np.float64)',
        '    m = np.array(t["m"], dtype=np.float32).astype(np.float64)',
        '    hn = h / np.linalg.norm(h, axis=1, keepdims=True)',
        '    mn = m / np.linalg.norm(m, axis=1, keepdims=True)',
        '    cos = list((mn @ hn.T).max(axis=1))',
        '    dot = list((m @ h.T).max(axis=1))',
        '    if len(set(t["g"])) == 1 or len(set(dot)) == 1 or len(set(cos)) == 1:',
        '        continue',
        '    out["cs"].append(spearmanr(t["g"], cos).statistic)',
        '    out["cp"].append(pearsonr(t["g"], cos).statistic)',
        '    out["ds"].append(spearmanr(t["g"], dot).statistic)',
        '    out["dp"].append(pearsonr(t["g"], dot).statistic)',
        'print(json.dumps({"n": len(out["cs"]), **{k: float(np.mean(v)) for k, v in out.items()}}))',
      ].join('\n'),
    ) as { n: number; cs: number; cp: number; ds: number; dp: number }
    t.equal(r.texts, 12)
    t.equal(r.scored, want.n, `${want.n} texts scored (two skipped)`)
    t.equal(want.n, 10)
    for (const [ours, theirs, name] of [
      [r.cosineSpearman, want.cs, 'cosine Spearman'],
      [r.cosinePearson, want.cp, 'cosine Pearson'],
      [r.dotSpearman, want.ds, 'dot Spearman'],
      [r.dotPearson, want.dp, 'dot Pearson'],
    ] as const)
      t.ok(Math.abs(ours - theirs) < 1e-12, `${name}: ${ours.toFixed(6)}, scipy ${theirs.toFixed(6)}`)
  },
)

t.test('known answers: a perfect and a reversed text; progress; nothing to correlate', async (t) => {
  // The machine summaries' best cosines fall as relevance falls (v0 is its own human summary): Spearman 1 or -1.
  const perfect = { human: ['v0'], machine: ['v0', 'v1', 'v2'], relevance: [0, 0, 0] }
  const cos = (await embed(perfect.machine)).map((m) => {
    const h = vectorOf('v0')
    const d = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0)
    return d(m, h) / Math.sqrt(d(m, m) * d(h, h))
  })
  const order = [0, 1, 2].sort((a, b) => cos[a] - cos[b])
  order.forEach((m, rank) => (perfect.relevance[m] = rank + 1))
  const reversed = { ...perfect, relevance: perfect.relevance.map((x) => 4 - x) }
  const events: { done: number; total: number }[] = []
  const r = await evaluateSummarization(embed, { name: 'two', texts: [perfect, reversed] }, { onProgress: (p) => events.push(p) })
  t.same([r.scored, r.cosineSpearman], [2, 0], 'Spearman 1 and -1: mean 0')
  const one = await evaluateSummarization(embed, { name: 'one', texts: [perfect] })
  t.ok(Math.abs(one.cosineSpearman - 1) < 1e-12, 'the perfect text alone: 1')
  t.same(events.at(-1), { done: 8, total: 8 }, 'progress: every human and machine summary')
  const none = await evaluateSummarization(embed, { name: 'flat', texts: [{ ...perfect, relevance: [2, 2, 2] }] })
  t.same([none.scored, Number.isNaN(none.cosineSpearman)], [0, true], 'every text skipped: no score (NaN)')
})

t.test('readers: MTEB’s rows of lists; refusals name the file, the line and what is wrong', async (t) => {
  const file = join(dir, 'summeval.jsonl')
  writeFileSync(
    file,
    jsonl([
      { id: 'a', text: 'the article', human_summaries: ['h1', 'h2'], machine_summaries: ['m1', 'm2'], relevance: [1.5, 4] },
      { id: 'b', text: 'another', human_summaries: ['h3'], machine_summaries: ['m3', 'm4', 'm5'], relevance: [2, 3, 5] },
    ]),
  )
  const set = await readSummarizationSet(file)
  t.same(set.texts[1], { machine: ['m3', 'm4', 'm5'], human: ['h3'], relevance: [2, 3, 5] })
  const bad = (name: string, row: object, message: RegExp) => {
    writeFileSync(join(dir, name), jsonl([row]))
    return t.rejects(readSummarizationSet(join(dir, name)), message)
  }
  const row = { human_summaries: ['h'], machine_summaries: ['m1', 'm2'], relevance: [1, 2] }
  await bad('uneven.jsonl', { ...row, relevance: [1] }, /uneven\.jsonl: line 1: 2 machine_summaries but 1 relevance scores/)
  await bad('nohuman.jsonl', { ...row, human_summaries: [] }, /nohuman\.jsonl: line 1: no human_summaries/)
  await bad('words.jsonl', { ...row, relevance: ['high', 'low'] }, /words\.jsonl: line 1: relevance must be a list of numbers/)
  await bad('flat.jsonl', { ...row, machine_summaries: 'm' }, /flat\.jsonl: line 1: machine_summaries must be a list of texts/)
  await bad('nocol.jsonl', { human_summaries: ['h'], relevance: [1] }, /nocol\.jsonl: no machine_summaries column/)
})
