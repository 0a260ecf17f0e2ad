// `simcsepp eval --update-card`: the evaluation's results written into the model folder's README.md as model-index
// metadata, merged with the card's (a set scored again replaces its result), every other key and the card's text kept
// byte for byte; read back by PyYAML (the Hub's reader) to the numbers the evaluation printed.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkModelCard, updateModelIndex } from '../lib/train/model-index-update.js'
import { mergeResults, type Result } from '../lib/train/model-index.js'
import { hubSources } from '../lib/cli/eval-card.js'
import { train } from '../lib/train/train.js'
import { cli, microModel, needsCli, tempDir, WORDS } from './helpers/train-corpus.js'
import { frontMatterOf, needsPyYaml } from './helpers/yaml.js'

const dir = tempDir('simcsepp-eval-card-')
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n'

const result = (type: string, name: string, value: number, split?: string): Result => ({
  task: { type, name: type },
  dataset: { name, type: name, ...(split ? { split } : {}) },
  metrics: [{ type: 'spearman_cosine', value, name: 'Spearman Cosine' }],
})

interface Index {
  metrics?: unknown[]
  'model-index': { name: string; results: Result[] }[]
  [key: string]: unknown
}

// A card as sentence-transformers or a person writes one: keys before and after the model-index, comments, a
// result of another tool with fields of its own, and text with '---' rules in it.
const FOREIGN = `---
language: en  # the card's language
license: apache-2.0
metrics:
- accuracy
model-index:
- name: their-name
  results:
  - task:
      type: semantic-similarity
    dataset:
      name: sts-test
      type: mteb/stsbenchmark-sts
      split: test
      revision: abc123
    metrics:
    - type: spearman_cosine
      value: 0.5
      verified: false
  - task: {type: Classification}
    dataset: {name: banking77, type: mteb/banking77, split: test}
    metrics: [{type: accuracy, value: 0.75}]
tags:
# kept as written
- sentence-transformers
- 'a: b'
---

# their model

Text with a rule:

---

and more.
`

t.test('updateModelIndex: merged with the card’s results, the rest of the card byte for byte', needsPyYaml, async (t) => {
  const model = join(dir, 'foreign')
  mkdirSync(model)
  const path = join(model, 'README.md')
  writeFileSync(path, FOREIGN)
  const u = await updateModelIndex(model, [
    result('semantic-similarity', 'sts-test', 0.8125, 'test'),
    result('reranking', 'askubuntu', 1e-7),
  ])
  t.same(u, { path, written: 2, replaced: 1, kept: 1, created: false })
  const card = readFileSync(path, 'utf8')
  // Every line outside metrics and model-index is where it was, and the text after the front matter is unchanged.
  const [front, body] = [card.slice(0, card.indexOf('\n---\n', 4)), card.slice(card.indexOf('\n---\n', 4))]
  const wantBody = FOREIGN.slice(FOREIGN.indexOf('\n---\n', 4))
  t.equal(body, wantBody, 'the text after the front matter')
  const lines = FOREIGN.slice(0, FOREIGN.indexOf('\n---\n', 4)).split('\n')
  const wantOthers = [...lines.slice(0, lines.indexOf('metrics:')), ...lines.slice(lines.indexOf('tags:'))]
  const frontLines = front.split('\n')
  t.same(frontLines.slice(0, frontLines.indexOf('metrics:')), wantOthers, 'the other keys as written, then the new metadata')
  t.equal(front.split('\n').at(-1)!.startsWith(' '), true, 'model-index now last')
  const read = frontMatterOf(card) as Index
  t.same(read.language, 'en')
  t.same(read.tags, ['sentence-transformers', 'a: b'])
  t.same(read.metrics, ['accuracy', 'spearman_cosine'], 'metrics: the card’s, then the results’ types')
  const [entry] = read['model-index']
  t.equal(entry.name, 'their-name', 'the card’s model name kept')
  t.same(
    entry.results,
    [
      result('semantic-similarity', 'sts-test', 0.8125, 'test'), // (in place of the card's, whose revision it did not score)
      {
        task: { type: 'Classification' },
        dataset: { name: 'banking77', type: 'mteb/banking77', split: 'test' },
        metrics: [{ type: 'accuracy', value: 0.75 }],
      },
      result('reranking', 'askubuntu', 1e-7),
    ],
    'replaced in place, kept, added; 1e-7 a number',
  )
  // The same evaluation again: the same bytes.
  await updateModelIndex(model, [result('semantic-similarity', 'sts-test', 0.8125, 'test'), result('reranking', 'askubuntu', 1e-7)])
  t.equal(readFileSync(path, 'utf8'), card, 'a second identical update changes nothing')
  // huggingface_hub's reader (where the Python of the transformers tests has it): each metric an EvalResult.
  const hubPython = process.env.SIMCSEPP_PYTHON
  if (hubPython && spawnSync(hubPython, ['-c', 'import huggingface_hub'], { encoding: 'utf8' }).status === 0) {
    const code = [
      'import json, sys',
      'from huggingface_hub import ModelCard',
      'card = ModelCard(sys.stdin.read())',
      'print(json.dumps([card.data.model_name, card.data.license, [[r.task_type, r.dataset_type, r.dataset_split, r.metric_type, r.metric_value] for r in card.data.eval_results]]))',
    ].join('\n')
    const r = spawnSync(hubPython, ['-c', code], { input: card, encoding: 'utf8' })
    t.equal(r.status, 0, r.stderr)
    t.same(JSON.parse(r.stdout), [
      'their-name',
      'apache-2.0',
      [
        ['semantic-similarity', 'sts-test', 'test', 'spearman_cosine', 0.8125],
        ['Classification', 'mteb/banking77', 'test', 'accuracy', 0.75],
        ['reranking', 'askubuntu', null, 'spearman_cosine', 1e-7],
      ],
    ])
  }
  // A result of another split, or config, is another result.
  const v = await updateModelIndex(model, [result('semantic-similarity', 'sts-test', 0.7, 'validation')])
  t.same([v.replaced, v.kept], [0, 3])
})

t.test('updateModelIndex: a folder without a card, a card without metadata, CRLF lines', needsPyYaml, async (t) => {
  const bare = join(dir, 'bare')
  mkdirSync(bare)
  const u = await updateModelIndex(bare, [result('semantic-similarity', 'stsb-test.tsv', 0.5)])
  t.same([u.created, u.written], [true, 1])
  const made = readFileSync(join(bare, 'README.md'), 'utf8')
  const read = frontMatterOf(made) as Index
  t.same(
    [read.library_name, read['model-index'][0].name, read['model-index'][0].results],
    ['sentence-transformers', 'bare', [result('semantic-similarity', 'stsb-test.tsv', 0.5)]],
  )
  t.match(made, /\n---\n\n# bare\n/)

  const plain = join(dir, 'plain')
  mkdirSync(plain)
  writeFileSync(join(plain, 'README.md'), '# mine\n\n---\n\nwords\n')
  await updateModelIndex(plain, [result('semantic-similarity', 'x', 0.25)])
  const card = readFileSync(join(plain, 'README.md'), 'utf8')
  t.ok(card.endsWith('\n---\n\n# mine\n\n---\n\nwords\n'), 'the text after the new metadata')
  t.same((frontMatterOf(card) as Index)['model-index'][0].results, [result('semantic-similarity', 'x', 0.25)])

  // An empty model-index and metrics (YAML's null) are none.
  const empty = join(dir, 'empty')
  mkdirSync(empty)
  writeFileSync(join(empty, 'README.md'), '---\nmodel-index:\nmetrics:\nlicense: mit\n---\ntext\n')
  await updateModelIndex(empty, [result('semantic-similarity', 'x', 0.25)])
  const e = readFileSync(join(empty, 'README.md'), 'utf8')
  t.ok(e.startsWith('---\nlicense: mit\nmetrics:\n- "spearman_cosine"\nmodel-index:\n- name: "empty"\n'), e)
  t.ok(e.endsWith('\n---\ntext\n'))

  const crlf = join(dir, 'crlf')
  mkdirSync(crlf)
  writeFileSync(join(crlf, 'README.md'), '---\r\nlicense: mit\r\n---\r\n# crlf\r\n')
  await updateModelIndex(crlf, [result('semantic-similarity', 'x', 0.25)])
  const c = readFileSync(join(crlf, 'README.md'), 'utf8')
  t.notMatch(c.replace(/\r\n/g, ''), /\n/, 'every line ends \\r\\n')
  t.ok(c.endsWith('---\r\n# crlf\r\n'))
  t.same((frontMatterOf(c.replace(/\r\n/g, '\n')) as Index)['model-index'][0].results, [result('semantic-similarity', 'x', 0.25)])
})

t.test('updateModelIndex: a card it cannot update is refused, unchanged', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['bad-yaml', '---\nlicense: [mit\n---\ntext\n', /metadata \(front matter\) is not YAML/],
    ['two-models', '---\nmodel-index:\n- name: a\n- name: b\n---\n', /not one model's list of results/],
    ['results-map', '---\nmodel-index:\n- name: a\n  results: {x: 1}\n---\n', /not one model's list of results/],
    ['flow', '---\n{license: mit}\n---\n', /not a block of keys/],
    ['list', '---\n- a\n---\n', /not a block of keys/],
  ]
  for (const [name, text, error] of cases) {
    const model = join(dir, name)
    mkdirSync(model)
    writeFileSync(join(model, 'README.md'), text)
    await t.rejects(checkModelCard(model), error, `${name}: checked`)
    await t.rejects(updateModelIndex(model, [result('semantic-similarity', 'x', 0.5)]), error, name)
    t.equal(readFileSync(join(model, 'README.md'), 'utf8'), text, `${name}: unchanged`)
  }
  await t.rejects(checkModelCard(join(dir, 'nowhere')), /nowhere: no such model folder/)
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked')
    mkdirSync(locked)
    chmodSync(locked, 0o555)
    await t.rejects(checkModelCard(locked), /cannot be written/)
  }
})

t.test('mergeResults: by task type, dataset name, split and config', async (t) => {
  const a = result('semantic-similarity', 'x', 0.1)
  const b = { ...result('semantic-similarity', 'x', 0.2), dataset: { name: 'x', type: 'x', config: 'de' } }
  const merged = mergeResults([a, b, 'not a result', { task: { type: 'reranking' } }], [result('semantic-similarity', 'x', 0.9)])
  t.same(merged, { results: [result('semantic-similarity', 'x', 0.9), b, 'not a result', { task: { type: 'reranking' } }], replaced: 1 })
})

t.test('hubSources: a Hub dataset’s files named by the dataset, typed by its id', async (t) => {
  const source = hubSources(
    ['hf://datasets/mteb/stsbenchmark-sts@main/test.jsonl.gz', 'hf://datasets/mteb/scifact/', '/data/local.tsv'],
    ['/cache/a/test.jsonl.gz', '/cache/b', '/data/local.tsv'],
  )!
  t.same(source('/cache/a/test.jsonl.gz'), { name: 'stsbenchmark-sts/test.jsonl.gz', type: 'mteb/stsbenchmark-sts' })
  t.same(source('/cache/b'), { name: 'scifact', type: 'mteb/scifact' })
  t.equal(source('/data/local.tsv'), undefined)
})

t.test('simcsepp eval --update-card: the printed numbers in the card, merged run after run', needsCli, async (t) => {
  let seed = 5
  const rnd = (k: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % k
  const sentence = (topic: number) => Array.from({ length: 5 }, (_, i) => WORDS[(topic * 7 + rnd(6) + i) % WORDS.length]).join(' ')
  const text = join(dir, 'corpus.txt')
  writeFileSync(text, Array.from({ length: 40 }, (_, i) => sentence(i % 4)).join('\n') + '\n')
  const model = join(dir, 'model')
  await train({
    model: await microModel(dir, 'micro'),
    data: text,
    maxLen: 16,
    steps: 1,
    batchSize: 16,
    evalEvery: 0,
    saveEvery: 0,
    out: model,
  })
  const cardPath = join(model, 'README.md')
  const trained = readFileSync(cardPath, 'utf8')
  const sts = join(dir, 'sts-test.tsv')
  writeFileSync(
    sts,
    'sentence1\tsentence2\tscore\n' +
      Array.from({ length: 24 }, (_, i) => `${sentence(i % 4)}\t${sentence((i * 3) % 4)}\t${i % 6}`).join('\n') +
      '\n',
  )
  const cls = join(dir, 'topics')
  mkdirSync(cls)
  writeFileSync(join(cls, 'train.jsonl'), jsonl(Array.from({ length: 24 }, (_, i) => ({ text: sentence(i % 4), label: i % 4 }))))
  writeFileSync(join(cls, 'test.jsonl'), jsonl(Array.from({ length: 12 }, (_, i) => ({ text: sentence(i % 4), label: i % 4 }))))
  const run = (extra: string[]) => spawnSync(process.execPath, [cli, 'eval', '--model', model, ...extra], { encoding: 'utf8' })
  const clsArgs = ['--classification', cls, '--samples-per-label', '2', '--experiments', '2']

  const first = run(['--sts', sts, ...clsArgs, '--json', '--update-card'])
  t.equal(first.status, 0, first.stderr)
  t.match(first.stderr, `simcsepp: updated ${cardPath}: model-index 2 results from this evaluation\n`)
  const out = JSON.parse(first.stdout)
  const card = readFileSync(cardPath, 'utf8')
  t.equal(card.slice(card.indexOf('\n---\n', 4)), trained.slice(trained.indexOf('\n---\n', 4)), 'the card’s text unchanged')
  const results = (c: string) => (frontMatterOf(c) as Index | null)?.['model-index'][0].results
  const got = results(card)
  if (got) {
    t.same(
      got,
      [
        {
          task: { type: 'semantic-similarity', name: 'Semantic Similarity' },
          dataset: { name: 'sts-test.tsv', type: 'sts-test-tsv' },
          metrics: [
            { type: 'pearson_cosine', value: out.results[0].pearson / 100, name: 'Pearson Cosine' },
            { type: 'spearman_cosine', value: out.results[0].spearman / 100, name: 'Spearman Cosine' },
          ],
        },
        {
          task: { type: 'Classification', name: 'Classification' },
          dataset: { name: 'topics', type: 'topics', split: 'test' },
          metrics: [
            { type: 'accuracy', value: out.classification[0].accuracy, name: 'Accuracy' },
            { type: 'f1', value: out.classification[0].f1, name: 'F1' },
          ],
        },
      ],
      'the printed numbers, as fractions; the folder’s split',
    )
    t.equal((frontMatterOf(card) as Index)['model-index'][0].name, 'model')
  }

  // Matryoshka sizes: a size below the model's is named by it, the whole vector as the model; the STS result replaced.
  const sizes = run(['--sts', sts, '--matryoshka-dims', '48,8', '--json', '--update-card'])
  t.equal(sizes.status, 0, sizes.stderr)
  t.match(sizes.stderr, 'model-index 2 results from this evaluation (1 in place of earlier ones), 1 earlier result kept\n')
  const bySize = JSON.parse(sizes.stdout).matryoshka
  const after = results(readFileSync(cardPath, 'utf8'))
  if (after) {
    t.same(
      after.map((r) => [r.dataset.name, r.metrics.at(-1)!.value]),
      [
        ['sts-test.tsv', bySize[0].results[0].spearman / 100],
        ['topics', out.classification[0].f1],
        ['sts-test.tsv (8 dims)', bySize[1].results[0].spearman / 100],
      ],
    )
  }

  // A retrieval set ranked four ways (--binary): the exact search's scores are the model's, with the split scored.
  const beir = join(dir, 'beir')
  mkdirSync(join(beir, 'qrels'), { recursive: true })
  writeFileSync(join(beir, 'corpus.jsonl'), jsonl(Array.from({ length: 12 }, (_, i) => ({ _id: `d${i}`, text: sentence(i % 4) }))))
  writeFileSync(join(beir, 'queries.jsonl'), jsonl(Array.from({ length: 4 }, (_, i) => ({ _id: `q${i}`, text: sentence(i) }))))
  writeFileSync(join(beir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\n' + [0, 1, 2, 3].map((i) => `q${i}\td${i}\t1\n`).join(''))
  const ranked = run(['--retrieval', beir, '--binary', '--json', '--update-card'])
  t.equal(ranked.status, 0, ranked.stderr)
  const exact = JSON.parse(ranked.stdout).retrieval[0]
  t.equal(exact.search, 'exact')
  const ir = results(readFileSync(cardPath, 'utf8'))?.at(-1)
  if (ir)
    t.same(ir, {
      task: { type: 'information-retrieval', name: 'Information Retrieval' },
      dataset: { name: 'beir', type: 'beir', split: 'test' },
      metrics: [
        { type: 'cosine_ndcg@10', value: exact.ndcgAt10, name: 'Cosine Ndcg@10' },
        { type: 'cosine_mrr@10', value: exact.scores.mrr[10], name: 'Cosine Mrr@10' },
        { type: 'cosine_recall@100', value: exact.scores.recall[100], name: 'Cosine Recall@100' },
      ],
    })

  // Refused before the model loads: no card of its own, a pooling it does not have, a card it cannot update.
  t.match(run(['--sts', sts, '--update-card', '--pooling', 'cls']).stderr, /--update-card records the model as it is: drop --pooling/)
  t.match(
    spawnSync(process.execPath, [cli, 'eval', '--onnx', join(dir, 'x.onnx'), '--sts', sts, '--update-card'], { encoding: 'utf8' }).stderr,
    /--update-card writes into the model folder's README.md: give --model DIR, not --onnx/,
  )
  t.match(
    spawnSync(process.execPath, [cli, 'eval', '--model', 'org/name', '--sts', sts, '--update-card'], { encoding: 'utf8' }).stderr,
    /org\/name names a Hub model/,
  )
  const before = readFileSync(cardPath, 'utf8')
  writeFileSync(cardPath, '---\nlicense: [mit\n---\n')
  const bad = run(['--sts', sts, '--update-card'])
  t.equal(bad.status, 1)
  t.match(bad.stderr, /README\.md: its metadata \(front matter\) is not YAML/)
  t.equal(bad.stdout, '', 'refused before evaluating')
  writeFileSync(cardPath, before)
  // Without the flag the card is not touched.
  t.equal(run(['--sts', sts]).status, 0)
  t.equal(readFileSync(cardPath, 'utf8'), before)
  t.ok(existsSync(cardPath))
})
