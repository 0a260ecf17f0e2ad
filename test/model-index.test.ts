// The model card's model-index metadata (lib/train/model-index.ts): the saved model's evaluation results in
// sentence-transformers' terms, read back by PyYAML (as the Hub's tooling reads front matter) to the same numbers.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { modelIndexLines, modelIndexResults, yamlNumber } from '../lib/train/model-index.js'
import { modelCard } from '../lib/train/model-card.js'
import type { EvalInfo } from '../lib/train/events.js'
import { frontMatterOf, needsPyYaml } from './helpers/yaml.js'

const pair = (ap: number) => ({ accuracy: 0.7, accuracyThreshold: 0.5, f1: 0.6, f1Threshold: 0.4, precision: 0.5, recall: 0.75, ap })

/** An evaluation with every kind: two STS files (one a Matryoshka run's), retrieval, and the five task kinds. */
function evaluation(step: number, scale = 1): EvalInfo {
  return {
    type: 'eval',
    step,
    results: [
      { file: '/data/stsb-dev.tsv', pairs: 1500, spearman: 81.25 * scale, pearson: 80.5 * scale },
      { file: '/data/sick: r.tsv', pairs: 500, spearman: 70.1 * scale },
    ],
    dimSpearman: { 64: 75.5 * scale },
    retrieval: [{ dataset: '/beir/scifact', split: 'dev', queries: 10, documents: 100, ndcgAt10: 0.61, mrrAt10: 0.58, recallAt100: 0.9 }],
    classification: [
      {
        dataset: '/mteb/massive',
        subset: 'de',
        split: 'validation',
        protocol: 'train/test',
        classes: 3,
        trainRows: 96,
        testRows: 30,
        fits: 10,
        samplesPerLabel: 32,
        accuracy: 0.8 * scale,
        accuracyStd: 0.01,
        f1: 0.75,
        f1Weighted: 0.76,
        converged: true,
      },
    ],
    clustering: [{ dataset: '/mteb/clusters.jsonl', sets: 1, texts: 50, vMeasure: 0.45, homogeneity: 0.4, completeness: 0.5 }],
    pairClassification: [
      {
        dataset: '/mteb/pairs',
        split: 'test',
        pairs: 40,
        ap: 0.9,
        bySimilarity: { cosine: pair(0.9), dot: pair(0.85), euclidean: pair(0.88), manhattan: pair(NaN) },
      },
    ],
    reranking: [{ dataset: '/mteb/rerank', split: 'test', queries: 6, map: 0.7, mrr10: 0.72 }],
    summarization: [
      {
        dataset: '/mteb/summeval.jsonl',
        texts: 5,
        scored: 5,
        cosineSpearman: 0.3,
        cosinePearson: 0.35,
        dotSpearman: 0.2,
        dotPearson: 0.25,
      },
    ],
    best: true,
  } as EvalInfo
}

/** The card of a run into `out` whose one evaluation, at step 10, is the best. */
const cardOf = (out: string) =>
  modelCard({
    args: { out, data: '/data/wiki.txt', objective: 'simcse++', steps: 20 },
    steps: [],
    evals: [evaluation(10)],
    best: { step: 10, spearman: 81.25 },
    data: [{ bytes: 100, sha256: 'ab'.repeat(32), lines: 10 }],
  })

t.test('each kind in sentence-transformers’ task types and metric names, scores as fractions', async (t) => {
  const r = modelIndexResults(evaluation(10))
  t.same(
    r.map((x) => [x.task.type, x.dataset.name, x.dataset.split ?? null, x.dataset.config ?? null]),
    [
      ['semantic-similarity', 'stsb-dev.tsv', null, null],
      ['semantic-similarity', 'sick: r.tsv', null, null],
      ['semantic-similarity', 'stsb-dev.tsv (64 dims)', null, null],
      ['information-retrieval', 'scifact', 'dev', null],
      ['Classification', 'massive', 'validation', 'de'],
      ['Clustering', 'clusters.jsonl', null, null],
      ['binary-classification', 'pairs', 'test', null],
      ['reranking', 'rerank', 'test', null],
      ['Summarization', 'summeval.jsonl', null, null],
    ],
  )
  t.same(r[0].metrics, [
    { type: 'pearson_cosine', value: 0.805, name: 'Pearson Cosine' },
    { type: 'spearman_cosine', value: 0.8125, name: 'Spearman Cosine' },
  ])
  t.same(r[0].dataset.type, 'stsb-dev-tsv')
  t.same(r[1].dataset.type, 'sick-r-tsv', 'a name’s other characters as hyphens')
  t.same(
    r[1].metrics.map((m) => m.type),
    ['spearman_cosine'],
    'no Pearson logged: none written',
  )
  t.same(r[3].metrics, [
    { type: 'cosine_ndcg@10', value: 0.61, name: 'Cosine Ndcg@10' },
    { type: 'cosine_mrr@10', value: 0.58, name: 'Cosine Mrr@10' },
    { type: 'cosine_recall@100', value: 0.9, name: 'Cosine Recall@100' },
  ])
  t.same(
    r[6].metrics.map((m) => [m.type, m.value]),
    [
      ['cosine_ap', 0.9],
      ['dot_ap', 0.85],
      ['euclidean_ap', 0.88],
      ['manhattan_ap', NaN],
      ['max_ap', 0.9],
    ],
  )
})

t.test('the front matter: the best evaluation’s numbers as PyYAML reads them; NaN left out', needsPyYaml, async (t) => {
  const evals = [evaluation(0, 0.5), evaluation(10), evaluation(20, 0.9)]
  const lines = modelIndexLines('my-model: v2', evals, { step: 10, spearman: 81.25 })
  const meta = frontMatterOf(`---\n${lines.join('\n')}\n---\n`) as {
    metrics: string[]
    'model-index': {
      name: string
      results: { task: { type: string }; dataset: Record<string, string>; metrics: { type: string; value: number }[] }[]
    }[]
  }
  const [index] = meta['model-index']
  t.equal(index.name, 'my-model: v2', 'a name with a colon, quoted')
  t.equal(index.results.length, 9)
  // Every value read back is the evaluation's own number (the best one's: step 10), to the last bit.
  const want = modelIndexResults(evals[1])
  index.results.forEach((r, i) => {
    t.same(r.dataset, want[i].dataset)
    t.same(
      r.metrics,
      want[i].metrics.filter((m) => Number.isFinite(m.value)),
      `${r.task.type} ${r.dataset.name}`,
    )
  })
  t.notOk(
    index.results.some((r) => r.metrics.some((m) => m.type === 'manhattan_ap')),
    'the NaN AP left out',
  )
  // Values JavaScript writes with an exponent and no point are still floats to PyYAML.
  const tiny = evaluation(10)
  tiny.clustering![0].vMeasure = 5e-7
  tiny.reranking![0].map = 1e-7
  const read = frontMatterOf(`---\n${modelIndexLines('m', [tiny], null).join('\n')}\n---\n`) as typeof meta
  const valueOf = (type: string) => read['model-index'][0].results.flatMap((r) => r.metrics).find((m) => m.type === type)!.value
  t.same([valueOf('v_measure'), valueOf('cosine_map')], [5e-7, 1e-7], 'exponents read as numbers')
  t.same([1e-7, 2.5e-8, 1e21, 0.5, 1].map(yamlNumber), ['1.0e-7', '2.5e-8', '1.0e+21', '0.5', '1'])
  t.same(meta.metrics.slice(0, 3), ['pearson_cosine', 'spearman_cosine', 'cosine_ndcg@10'], 'metrics: each type once, in order')
  t.equal(new Set(meta.metrics).size, meta.metrics.length)

  // Without a best (no selection recorded): the last evaluation's; without evaluations: nothing.
  const last = frontMatterOf(`---\n${modelIndexLines('m', evals, null).join('\n')}\n---\n`) as typeof meta
  t.equal(last['model-index'][0].results[0].metrics[1].value, (81.25 * 0.9) / 100)
  t.same(modelIndexLines('m', [], null), [])
})

t.test('the model card carries it in its front matter, after the tags', needsPyYaml, async (t) => {
  const card = cardOf('/runs/out')
  const meta = frontMatterOf(card) as Record<string, unknown>
  t.equal(meta.library_name, 'sentence-transformers')
  t.ok(Array.isArray(meta.tags))
  const index = (meta['model-index'] as { name: string; results: unknown[] }[])[0]
  t.equal(index.name, 'out')
  t.equal(index.results.length, 9)
})

// huggingface_hub's own reader (ModelCard's metadata -> EvalResult), where the Python of the transformers tests has it.
const hubPython = process.env.SIMCSEPP_PYTHON
const hasHub = hubPython !== undefined && spawnSync(hubPython, ['-c', 'import huggingface_hub'], { encoding: 'utf8' }).status === 0
t.test('huggingface_hub reads the card’s results', { skip: hasHub ? false : 'SIMCSEPP_PYTHON with huggingface_hub not set' }, async (t) => {
  const card = cardOf('/runs/my-model')
  const code = [
    'import json, sys',
    'from huggingface_hub import ModelCard',
    'card = ModelCard(sys.stdin.read())',
    'print(json.dumps([card.data.model_name, [[r.task_type, r.dataset_name, r.dataset_split, r.dataset_config, r.metric_type, r.metric_value] for r in card.data.eval_results]]))',
  ].join('\n')
  const r = spawnSync(hubPython!, ['-c', code], { input: card, encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  const [name, results] = JSON.parse(r.stdout) as [string, unknown[][]]
  t.equal(name, 'my-model')
  const want = modelIndexResults(evaluation(10)).flatMap((x) =>
    x.metrics
      .filter((m) => Number.isFinite(m.value))
      .map((m) => [x.task.type, x.dataset.name, x.dataset.split ?? null, x.dataset.config ?? null, m.type, m.value]),
  )
  t.same(results, want, 'every metric, by task, dataset, split and subset')
})
