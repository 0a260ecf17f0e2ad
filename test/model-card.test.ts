// The output directory's model card (README.md, issue 14): base model, data, objective and
// hyper-parameters from training_args.json, the evaluation table from metrics.json, and how to load the
// model in Python and Node; config_sentence_transformers.json records no library versions.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import { tempDir, TINY_RUN, writeSentences, writeStsFile } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-model-card-')
const data = writeSentences(join(dir, 'wiki.txt'), 80)
const sts = writeStsFile(join(dir, 'sts-dev.tsv'))

t.test('a text run: objective, hyper-parameters and the evaluation table as the run recorded them', async (t) => {
  const out = join(dir, 'text-run')
  await train({ ...TINY_RUN, data, out, steps: 4, evalFiles: [sts], evalEvery: 2, lr: 2e-4 })
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  const args = JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8'))
  const metrics = JSON.parse(readFileSync(join(out, 'run', 'metrics.json'), 'utf8'))
  t.ok(card.startsWith('---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\n'), 'Hub front matter')
  t.match(card, /^# text-run$/m)
  t.match(card, /- Base model: random initialisation \(`"tiny"` size\)/)
  t.notMatch(card, /base_model:/, 'no base_model in the front matter without a Hub base model')
  t.match(card, /- Data: `wiki\.txt`, 80 sentences, read as text/)
  t.match(card, /- Objective: `simcse\+\+`/)
  t.match(card, /SimCSE\+\+: off-dropout InfoNCE/)
  for (const [name, value] of [
    ['batch size', args.batchSize],
    ['learning rate', 0.0002],
    ['steps', 4],
    ['temperature', 0.05],
    ['DCL weight', 0.1],
    ['seed', 1],
    ['pooling', 'cls'],
  ])
    t.match(card, `\n| ${name} | ${value} |\n`, `${name} ${value}`)
  t.match(card, /\| step \| sts-dev\.tsv \| average \|/)
  for (const e of metrics.evals) {
    const mark = metrics.best && e.step === metrics.best.step ? ' (saved)' : ''
    t.match(card, `| ${e.step}${mark} | ${e.results[0].spearman.toFixed(2)} | ${e.average.toFixed(2)} |`, `evaluation at step ${e.step}`)
  }
  t.equal(metrics.evals.length, 3, 'steps 0, 2 and 4')
  t.match(card, /SentenceTransformer\("path\/to\/text-run"\)/)
  t.match(card, /await SentenceEncoder\.load\('path\/to\/text-run'\)/)
  t.match(card, /`checkpoint\/`/)
  const st = JSON.parse(readFileSync(join(out, 'config_sentence_transformers.json'), 'utf8'))
  t.notOk('__version__' in st, 'no invented library versions')
  t.equal(st.similarity_fn_name, 'cosine')
})

t.test('a supervised run: triplets, the supervised objective, no evaluation', async (t) => {
  const csv = join(dir, 'nli.csv')
  const lines = readFileSync(data, 'utf8').trim().split('\n')
  writeFileSync(
    csv,
    'sent0,sent1,hard_neg\n' +
      lines.map((s, i) => `${s},${s.split(' ').reverse().join(' ')},${lines[(i + 7) % lines.length]}`).join('\n') +
      '\n',
  )
  const out = join(dir, 'sup-run')
  await train({ ...TINY_RUN, data: csv, out, pooling: 'mean' })
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /- Data: `nli\.csv`, 80 triplets \(anchor, positive, hard negative\), read as csv/)
  t.match(card, /- Objective: `simcse` \(supervised\)/)
  t.match(card, /supervised SimCSE: .*every hard negative of the batch/)
  t.notMatch(card, /DCL weight/, 'options the objective does not use are left out')
  t.match(card, /No evaluation was run/)
  t.match(card, /Pooling: the mean over tokens/)
})
