// Retrieval evaluation (lib/eval/retrieval.ts, lib/eval/beir.ts): trec_eval's measures on worked examples,
// BEIR folders read as BEIR reads them (and refused with file:line when malformed), the whole evaluation with
// vectors chosen by the test, and `simcsepp eval --retrieval` on a tiny model against the library's numbers.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { SentenceEncoder, evaluateRetrieval, queryScores, readBeirDataset, type RetrievalDataset } from '../lib/index.js'
import { cli, needsCli } from './helpers/train-corpus.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'
import { writeBeir } from './helpers/beir-folder.js'

const close = (t: { ok: (pass: boolean, message: string) => unknown }, got: number, want: number, what: string) =>
  t.ok(Math.abs(got - want) <= 1e-12, `${what}: ${got} vs ${want}`)

t.test('the measures of one ranking, worked by hand', async (t) => {
  // Ranked d1 d2 d3 d4; judged d2 (grade 2), d4 (1), d9 (1, never retrieved), d3 (0: judged not relevant). R = 3,
  // the ideal gains 2, 1, 1.
  const judged = new Map([
    ['d2', 2],
    ['d4', 1],
    ['d9', 1],
    ['d3', 0],
  ])
  const s = queryScores(['d1', 'd2', 'd3', 'd4'], judged, [1, 3, 5, 10])
  for (const m of ['ndcg', 'map', 'recall', 'precision', 'mrr'] as const) close(t, s[m][1], 0, `${m}@1 (d1 is unjudged)`)
  // @3: DCG = 2/log2(3); IDCG = 2 + 1/log2(3) + 1/2.
  close(t, s.ndcg[3], 0.4030302838010049, 'nDCG@3')
  close(t, s.map[3], 1 / 6, 'MAP@3 = (1/2) / 3')
  close(t, s.recall[3], 1 / 3, 'Recall@3')
  close(t, s.precision[3], 1 / 3, 'P@3')
  close(t, s.mrr[3], 1 / 2, 'MRR@3')
  // @5: DCG adds 1/log2(5) for d4 at rank 4; AP = 1/2 + 2/4.
  close(t, s.ndcg[5], 0.5405857679450102, 'nDCG@5')
  close(t, s.map[5], 1 / 3, 'MAP@5')
  close(t, s.recall[5], 2 / 3, 'Recall@5')
  close(t, s.precision[5], 2 / 5, 'P@5 divides by 5 though 4 were ranked')
  close(t, s.precision[10], 2 / 10, 'P@10')
  close(t, s.ndcg[10], s.ndcg[5], 'nDCG@10: nothing more ranked')
  // The best ranking: every measure at its ceiling.
  const best = queryScores(['d2', 'd4', 'd9'], judged, [3])
  close(t, best.ndcg[3], 1, 'ideal order: nDCG 1')
  close(t, best.map[3], 1, 'ideal order: MAP 1')
  close(t, best.mrr[3], 1, 'ideal order: MRR 1')
  // Nothing relevant judged: all zero (trec_eval's 0, not NaN).
  const none = queryScores(['d1'], new Map([['d1', 0]]), [1])
  for (const m of ['ndcg', 'map', 'recall', 'precision', 'mrr'] as const) close(t, none[m][1], 0, `${m} with no relevant document`)
})

t.test('a BEIR folder is read as BEIR reads it', async (t) => {
  const dir = writeBeir({
    corpus: [
      { _id: 'a', title: 'Cats', text: 'sit on mats.' },
      { _id: 7, text: '  no title  ' },
      { _id: 'c', title: '', text: 'empty title' },
      { _id: 'd', title: 'Only a title' },
    ],
    queries: [
      { _id: 'q1', text: 'where do cats sit' },
      { _id: 'q2', text: 'not judged' },
      { _id: 3, text: 'numeric id' },
    ],
    qrels: 'query-id\tcorpus-id\tscore\nq1\ta\t1\n3\t7\t2\n3\tc\t0\nq1\tgone\t1\n',
  })
  const d = await readBeirDataset(dir)
  t.same(
    d.corpus.map((x) => [x.id, x.text]),
    [
      ['a', 'Cats sit on mats.'],
      ['7', 'no title'],
      ['c', 'empty title'],
      ['d', 'Only a title'],
    ],
    'title and text joined by a space and trimmed; numeric ids as text',
  )
  t.same(
    d.queries.map((q) => q.id),
    ['q1', '3'],
    'only the judged queries, in file order',
  )
  t.same(
    [...d.qrels.get('3')!],
    [
      ['7', 2],
      ['c', 0],
    ],
  )
  t.equal(d.unknownDocuments, 1, 'a judged document the corpus lacks is counted')
  t.equal(d.split, 'test')
  await t.rejects(
    readBeirDataset(dir, 'dev'),
    /no qrels\/dev\.tsv \(a BEIR folder holds corpus\.jsonl, queries\.jsonl and qrels\/<split>\.tsv\)/,
  )

  const bad = async (files: Parameters<typeof writeBeir>[0], re: RegExp, what: string) =>
    t.rejects(readBeirDataset(writeBeir(files)), re, what)
  const corpus = [{ _id: 'a', text: 'x' }],
    queries = [{ _id: 'q', text: 'y' }],
    qrels = 'q\ta\t1\n'
  await bad(
    { corpus: '{"_id": "a", "text": "x"}\n{oops\n', queries, qrels },
    /corpus\.jsonl:2: not a JSON object/,
    'bad JSON, with its line',
  )
  await bad({ corpus: [...corpus, { _id: 'a', text: 'z' }], queries, qrels }, /corpus\.jsonl:2: _id "a" appears twice/, 'duplicate id')
  await bad({ corpus: [{ text: 'x' }], queries, qrels }, /corpus\.jsonl:1: "_id" must be a non-empty string or a number/, 'no id')
  await bad({ corpus: [{ _id: 'a', text: 5 }], queries, qrels }, /corpus\.jsonl:1: "text" must be a string, got 5/, 'text not a string')
  await bad({ corpus, queries, qrels: 'q\ta\t1.5\n' }, /test\.tsv:1: the score must be an integer >= 0, got "1\.5"/, 'fractional score')
  await bad({ corpus, queries, qrels: 'q\ta\t1\nq\ta\t2\n' }, /test\.tsv:2: query "q" judges document "a" twice/, 'a pair judged twice')
  await bad({ corpus, queries, qrels: 'q\ta\n' }, /test\.tsv:1: expected query-id, corpus-id and score/, 'two columns')
  await bad({ corpus, queries, qrels: 'z\ta\t1\n' }, /query "z" is not in queries\.jsonl/, 'a judged query that does not exist')
  await bad({ corpus: '', queries, qrels }, /corpus\.jsonl: no documents/, 'an empty corpus')
})

/** A dataset in memory, and an embed function giving each text the vector the test chose. */
function fixture(): { data: RetrievalDataset; embed: (texts: string[]) => Promise<Float32Array[]>; seen: string[] } {
  const vec: Record<string, number[]> = {
    // Documents: angles on the unit circle (cosine with a query at angle 0 falls as the angle grows).
    'D:near': [1, 0.1],
    'D:mid': [1, 0.5],
    'D:far': [0, 1],
    'D:tieA': [1, 0.3],
    'D:tieB': [1, 0.3],
    'D:self': [1, 0],
    'Q:query one': [1, 0],
    'Q:query two': [0, 1],
  }
  const seen: string[] = []
  const embed = async (texts: string[]) => {
    seen.push(...texts)
    return texts.map((s) => {
      if (!vec[s]) throw new Error(`no vector for ${s}`)
      return Float32Array.from(vec[s])
    })
  }
  const docs = ['near', 'mid', 'far', 'tieA', 'tieB', 'self']
  const data: RetrievalDataset = {
    dir: 'fixture',
    split: 'test',
    corpus: docs.map((id) => ({ id: id === 'self' ? 'q1' : id, text: id })),
    queries: [
      { id: 'q1', text: 'query one' },
      { id: 'q2', text: 'query two' },
    ],
    qrels: new Map([
      [
        'q1',
        new Map([
          ['mid', 1],
          ['tieA', 2],
        ]),
      ],
      ['q2', new Map([['far', 1]])],
    ]),
    unknownDocuments: 0,
  }
  return { data, embed, seen }
}

t.test('evaluateRetrieval ranks by cosine, drops the query itself, breaks ties as trec_eval', async (t) => {
  const { data, embed, seen } = fixture()
  const r = await evaluateRetrieval(embed, data, { queryPrefix: 'Q:', documentPrefix: 'D:' })
  t.ok(seen.includes('Q:query one') && seen.includes('D:near'), 'the prefixes reach the embedder')
  // q1 (angle 0): its own document "q1" (cosine 1) is dropped; then near, tieB (greater id than tieA), tieA, mid, far.
  const q1 = queryScores(['near', 'tieB', 'tieA', 'mid', 'far'], data.qrels.get('q1')!)
  // q2 (angle 90°): far first (cosine 1).
  const q2 = queryScores(['far', 'mid', 'tieB', 'tieA', 'near', 'q1'], data.qrels.get('q2')!)
  for (const m of ['ndcg', 'map', 'recall', 'precision', 'mrr'] as const)
    for (const k of [1, 3, 5, 10, 100]) close(t, r.scores[m][k], (q1[m][k] + q2[m][k]) / 2, `${m}@${k}: the mean of the two queries`)
  close(t, r.ndcgAt10, r.scores.ndcg[10], 'ndcgAt10')
  t.equal(r.queries, 2)
  t.equal(r.documents, 6)
  close(t, q2.ndcg[1], 1, "q2's nDCG@1 (the check above is not vacuous)")
  t.ok(q1.ndcg[10] > 0 && q1.ndcg[10] < 1, `q1's nDCG@10 ${q1.ndcg[10]}`)

  // Without dropping identical ids, q1 finds its own document first (unjudged: nDCG@1 0).
  const kept = await evaluateRetrieval(embed, data, { queryPrefix: 'Q:', documentPrefix: 'D:', ignoreIdenticalIds: false })
  const q1kept = queryScores(['q1', 'near', 'tieB', 'tieA', 'mid'], data.qrels.get('q1')!)
  close(t, kept.scores.ndcg[5], (q1kept.ndcg[5] + q2.ndcg[5]) / 2, 'ignoreIdenticalIds: false keeps the query itself')
})

t.test('simcsepp eval --retrieval: the library numbers of the same model, as a table and as JSON', needsCli, async (t) => {
  const model = await saveTinyModel({ seed: 3 })
  const words = ['the cat sat on the mat', 'a dog runs fast', 'the river is big', 'a red house', 'another small tree', 'green and blue']
  const dir = writeBeir({
    corpus: words.map((text, i) => ({ _id: `d${i}`, title: i % 2 ? 'model' : '', text })),
    queries: [
      { _id: 'q0', text: 'the cat sat' },
      { _id: 'q1', text: 'a big river' },
    ],
    qrels: 'query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td2\t1\nq1\td4\t1\n',
  })
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [cli, 'eval', '--model', model, '--retrieval', dir, ...args], { encoding: 'utf8' })
  const json = run('--json', '--device', 'cpu', '--query-prefix', 'a ')
  t.equal(json.status, 0, json.stderr)
  const out = JSON.parse(json.stdout)
  t.same(Object.keys(out), ['retrieval'], 'without --sts: only the retrieval results')
  const enc = await SentenceEncoder.load(model, { device: 'cpu' })
  const want = await evaluateRetrieval((s) => enc.encode(s), await readBeirDataset(dir), { queryPrefix: 'a ' })
  await enc.close()
  t.same(out.retrieval[0], { ...want, scores: JSON.parse(JSON.stringify(want.scores)) }, 'the same numbers as evaluateRetrieval')
  const table = run('--device', 'cpu', '--query-prefix', 'a ')
  t.equal(table.status, 0, table.stderr)
  const lines = table.stdout.trimEnd().split('\n')
  t.match(lines[0], /^dataset\s+queries\s+docs\s+nDCG@10\s+MAP@10\s+MRR@10\s+R@10\s+R@100$/)
  t.match(lines[2], new RegExp(`\\(test\\)\\s+2\\s+6\\s+${(100 * want.ndcgAt10).toFixed(2)}\\s`))
  t.ok(
    lines.every((l) => l.length <= 80),
    'fits 80 columns',
  )
  const missing = run('--split', 'dev')
  t.equal(missing.status, 1)
  t.match(missing.stderr, /no qrels\/dev\.tsv/)
})
