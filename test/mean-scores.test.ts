// MTEB's means over one `simcsepp eval` (lib/cli/mean-scores.ts): each dataset's main score as MTEB takes it, a
// multilingual dataset once, the exact search's retrieval scores only; Mean (Task) over datasets, Mean (TaskType)
// over each type's mean.
import t from 'tap'
import { mainScoreMeans, mainScoresByType, meansColumns, meansTable } from '../lib/cli/mean-scores.js'
import { kindMeans } from '../lib/train/task-evaluation.js'
import { withSetPaths, type EvalCommandResults } from '../lib/cli/eval-card.js'
import { setLabel } from '../lib/hub/hub-model.js'

const none: EvalCommandResults = {
  sts: null,
  retrieval: [],
  translation: [],
  classification: [],
  clustering: [],
  pairClassification: [],
  reranking: [],
  summarization: [],
}
const classification = (dataset: string, accuracy: number, subset?: string) =>
  ({ dataset, accuracy, ...(subset ? { subset } : {}) }) as EvalCommandResults['classification'][number]

t.test('main scores by task type, and their two means', async (t) => {
  const r = {
    ...none,
    sts: {
      results: [
        { file: '/d/a.tsv', pairs: 9, spearman: 80, pearson: 70 },
        { file: '/d/b.tsv', pairs: 9, spearman: 60, pearson: 50 },
      ],
      average: 70,
      averagePearson: 60,
    },
    retrieval: [
      { search: 'exact', ndcgAt10: 0.5 },
      { search: 'binary', ndcgAt10: 0.1 },
    ] as EvalCommandResults['retrieval'],
    translation: [{ file: '/t/pairs.csv', f1: 0.9, accuracy: 0.2 }] as EvalCommandResults['translation'],
    classification: [classification('/m/massive', 0.4, 'de'), classification('/m/massive', 0.8, 'en'), classification('/c/topics', 0.3)],
  }
  const byType = mainScoresByType(r)
  t.same(byType, { STS: [0.8, 0.6], Retrieval: [0.5], BitextMining: [0.9], Classification: [(0.4 + 0.8) / 2, 0.3] })
  const m = mainScoreMeans(byType)!
  const task = (0.8 + 0.6 + 0.5 + 0.9 + 0.6 + 0.3) / 6
  const taskType = (0.7 + 0.5 + 0.9 + 0.45) / 4
  t.equal(m.datasets, 6)
  t.equal(m.taskTypes, 4)
  t.ok(Math.abs(m.mean - task) < 1e-15, `Mean (Task) ${m.mean}`)
  t.ok(Math.abs(m.meanByTaskType - taskType) < 1e-15, `Mean (TaskType) ${m.meanByTaskType}`)
  t.not(m.mean.toFixed(4), m.meanByTaskType.toFixed(4), 'the two differ where types hold different numbers of datasets')
  t.same(
    meansTable(m).split('\n').slice(2),
    [`Mean (Task)          6 datasets    ${(100 * task).toFixed(2)}`, `Mean (TaskType)      4 task types  ${(100 * taskType).toFixed(2)}`],
    'the table’s rows',
  )
  t.same(
    meansColumns(m).map((c) => c.name),
    ['Mean (Task)', 'Mean (TaskType)'],
  )
})

t.test('no means of fewer than two datasets', async (t) => {
  t.equal(mainScoreMeans(mainScoresByType(none)), null)
  t.equal(mainScoreMeans(mainScoresByType({ ...none, classification: [classification('/c/x', 0.5)] })), null)
  // A multilingual dataset is one dataset, however many subsets.
  const subsets = { ...none, classification: [classification('/m/x', 0.5, 'de'), classification('/m/x', 0.7, 'en')] }
  t.equal(mainScoreMeans(mainScoresByType(subsets)), null)
  t.same(meansColumns(null), [])
})

t.test('kindMeans: the one computation behind eval means and training selection', async (t) => {
  const m = kindMeans({ STS: [0.8, 0.6], Retrieval: [0.5], Clustering: [] })
  t.ok(m)
  t.equal(m!.datasets, 3)
  t.equal(m!.kinds, 2, 'a kind with no scores is not counted')
  t.ok(Math.abs(m!.mean - 1.9 / 3) < 1e-15)
  t.ok(Math.abs(m!.meanByKind - 0.6) < 1e-15, '(mean(0.8, 0.6) + 0.5) / 2')
  t.equal(kindMeans({}), null)
  t.equal(kindMeans({ STS: [] }), null)
  const one = kindMeans({ STS: [0.7] })
  t.same(one, { datasets: 1, mean: 0.7, kinds: 1, meanByKind: 0.7 }, 'training selects by one set; eval shows no mean of one')
  t.equal(mainScoreMeans({ STS: [0.7] }), null)
})

t.test('withSetPaths renames every result path; setLabel names Hub paths by dataset and path', async (t) => {
  const r: EvalCommandResults = {
    ...none,
    sts: { results: [{ file: '/c/a.tsv', pairs: 2, spearman: 1, pearson: 1 }], average: 1, averagePearson: 1 },
    retrieval: [{ dataset: '/c/snap', split: 'test' } as EvalCommandResults['retrieval'][number]],
    translation: [{ file: '/c/t.csv' } as EvalCommandResults['translation'][number]],
    classification: [classification('/c/multi', 0.5, 'de'), classification('/c/one.csv', 0.6)],
  }
  const names: Record<string, string> = { '/c/a.tsv': 'hf://datasets/o/sts/a.tsv', '/c/snap': 'hf://datasets/o/scifact' }
  const renamed = withSetPaths(r, (p) => names[p] ?? p.toUpperCase())
  t.equal(renamed.sts!.results[0].file, 'hf://datasets/o/sts/a.tsv')
  t.equal(renamed.sts!.results[0].spearman, 1)
  t.equal(renamed.retrieval[0].dataset, 'hf://datasets/o/scifact')
  t.equal(renamed.translation[0].file, '/C/T.CSV')
  t.same(
    renamed.classification.map((x) => [x.dataset, x.subset, x.accuracy]),
    [
      ['/C/MULTI', 'de', 0.5],
      ['/C/ONE.CSV', undefined, 0.6],
    ],
  )
  t.equal(r.sts!.results[0].file, '/c/a.tsv', 'the results given are unchanged')
  t.equal(setLabel('hf://datasets/o/scifact'), 'scifact')
  t.equal(setLabel('hf://datasets/mteb/stsbenchmark-sts/test.jsonl.gz'), 'stsbenchmark-sts/test.jsonl.gz')
  t.equal(setLabel('hf://datasets/o/x@refs%2Fpr%2F1/data/'), 'x/data')
  t.equal(setLabel('/data/sts/test.jsonl.gz'), 'test.jsonl.gz')
})
