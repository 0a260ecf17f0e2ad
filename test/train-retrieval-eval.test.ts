// Retrieval evaluation during training (train()'s evalRetrieval): BEIR folders scored at each evaluation (the dev
// qrels when the folder has them), the numbers SentenceEncoder and evaluateRetrieval give for the saved model, model
// selection by nDCG@10 when no STS file is given (and by STS when one is), the log, metrics.json, model card and plot.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { evaluateRetrieval, readBeirDataset, SentenceEncoder } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import type { EvalInfo } from '../lib/train/events.js'
import { writeBeir } from './helpers/beir-folder.js'
import { runCli, needsCli, tempDir, TINY_RUN, WORDS, writeSentences, writeStsFile } from './helpers/train-corpus.js'
import { writeFileSync } from 'node:fs'

/** A BEIR folder over the grammar's words: 30 documents, 10 queries judging two documents each (dev), and other test qrels. */
function grammarBeir(): string {
  const doc = (i: number) => [0, 1, 2, 3, 4].map((k) => WORDS[(i * 5 + k * 7) % WORDS.length]).join(' ')
  const dir = writeBeir({
    corpus: Array.from({ length: 30 }, (_, i) => ({ _id: `d${i}`, title: '', text: doc(i) })),
    queries: Array.from({ length: 10 }, (_, i) => ({
      _id: `q${i}`,
      text: doc(3 * i)
        .split(' ')
        .slice(0, 3)
        .join(' '),
    })),
    qrels: Array.from({ length: 10 }, (_, i) => `q${i}\td${3 * i}\t1\nq${i}\td${(3 * i + 1) % 30}\t1\n`).join(''),
    split: 'dev',
  })
  writeFileSync(join(dir, 'qrels', 'test.tsv'), 'q0\td29\t1\n')
  return dir
}

t.test('evalRetrieval alone: nDCG@10 selects the model; the numbers are those of the saved model', async (t) => {
  const dir = tempDir('simcsepp-train-retrieval-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const beir = grammarBeir()
  const out = join(dir, 'out')
  const evals: EvalInfo[] = []
  const messages: string[] = []
  const run = { ...TINY_RUN, data, device: 'cpu' as const, steps: 4, evalEvery: 2, lr: 5e-4 }
  const result = await train(
    { ...run, out, evalRetrieval: [beir] },
    { onEval: (e) => void evals.push(e), onMessage: (m) => void messages.push(m) },
  )
  t.ok(
    messages.some((m) => m.includes(`${beir} (dev split): 10 queries, 30 documents`)),
    'the log names the set and its dev split',
  )
  t.equal(evals.length, 3, 'steps 0, 2, 4')
  for (const e of evals) {
    t.same(e.results, [], `step ${e.step}: no STS files`)
    t.notOk('spearman' in e, 'no STS score')
    const [r] = e.retrieval!
    t.match(r, { dataset: beir, split: 'dev', queries: 10, documents: 30 })
    for (const k of ['ndcgAt10', 'mrrAt10', 'recallAt100'] as const) t.ok(r[k] >= 0 && r[k] <= 1, `${k} ${r[k].toFixed(4)} in [0, 1]`)
    t.ok(Math.abs(r.recallAt100 - 1) < 1e-12, 'the whole corpus is within 100: recall 1')
  }
  const bestStep = evals.filter((e) => e.best).at(-1)!.step
  const bestScore = evals.find((e) => e.step === bestStep)!.retrieval![0].ndcgAt10
  t.same(result.best, { step: bestStep, ndcgAt10: bestScore }, 'the best: by nDCG@10')
  for (const e of evals) t.ok(e.retrieval![0].ndcgAt10 <= bestScore, `step ${e.step} is not better than the best`)
  // The saved model, encoded by SentenceEncoder and scored by evaluateRetrieval, gives the logged nDCG@10.
  const enc = await SentenceEncoder.load(out, { device: 'cpu' })
  const again = await evaluateRetrieval((s) => enc.encode(s), await readBeirDataset(beir, 'dev'))
  await enc.close()
  t.ok(Math.abs(again.ndcgAt10 - bestScore) < 1e-6, `SentenceEncoder: nDCG@10 ${again.ndcgAt10.toFixed(6)}, logged ${bestScore.toFixed(6)}`)

  const metrics = JSON.parse(readFileSync(join(out, 'run', 'metrics.json'), 'utf8'))
  t.same(metrics.best, result.best, 'metrics.json')
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  const name = `${beir.split('/').pop()} (dev)`
  t.match(card, `| step | ${name} nDCG@10 |`, 'a column per set')
  t.match(card, `the best of \`${name}\`'s nDCG@10`)
  t.match(card, `| ${bestStep} (saved) | ${(100 * bestScore).toFixed(2)} |`)
  t.match(readFileSync(join(out, 'run', 'loss_curve.svg'), 'utf8'), /nDCG@10 ×100/, 'the plot shows nDCG@10')

  // Resumed with an STS file, the checkpoint's best (by nDCG@10) is set aside.
  const sts = writeStsFile(join(dir, 'sts.tsv'))
  const resumedMessages: string[] = []
  const resumed = await train(
    { ...run, out, resume: out, evalFiles: [sts], evalRetrieval: [beir] },
    { onMessage: (m) => void resumedMessages.push(m) },
  )
  t.ok(
    resumedMessages.some((m) => /chosen by another measure than this run's \(spearman\)/.test(m)),
    'says the best was set aside',
  )
  t.equal(resumed.best, null, 'no evaluation ran after the last step: no best yet')
})

t.test('with STS files too, the first STS file selects and the retrieval sets are reported', async (t) => {
  const dir = tempDir('simcsepp-train-retrieval-sts-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const sts = writeStsFile(join(dir, 'sts.tsv'))
  const beir = grammarBeir()
  const evals: EvalInfo[] = []
  const result = await train(
    { ...TINY_RUN, data, device: 'cpu', out: join(dir, 'out'), steps: 2, evalEvery: 2, evalFiles: [sts], evalRetrieval: [beir, beir] },
    { onEval: (e) => void evals.push(e) },
  )
  t.ok('spearman' in result.best!, 'the best: by STS Spearman')
  for (const e of evals) {
    t.equal(e.retrieval!.length, 2, 'both sets reported')
    t.equal(e.retrieval![0].ndcgAt10, e.retrieval![1].ndcgAt10, 'the same set twice: the same numbers')
  }
  const card = readFileSync(join(dir, 'out', 'README.md'), 'utf8')
  t.match(card, /\| step \| sts\.tsv \| average \| .* nDCG@10 \| .* nDCG@10 \|/)
  await t.rejects(train({ ...TINY_RUN, data, out: join(dir, 'x'), evalRetrieval: [join(dir, 'nowhere')] }), /nowhere: no corpus\.jsonl/)
  await t.rejects(
    train({ ...TINY_RUN, data, out: join(dir, 'y'), evalRetrieval: 'dir' as never }),
    /evalRetrieval must be an array of paths/,
  )
})

t.test('simcsepp train --eval-retrieval', needsCli, async (t) => {
  const dir = tempDir('simcsepp-train-retrieval-cli-')
  const data = writeSentences(join(dir, 'data.txt'), 20)
  const beir = grammarBeir()
  const r = runCli([
    'train',
    ...['--config', 'tiny', '--batch-size', '8', '--max-len', '12', '--data', data, '--steps', '2', '--eval-every', '2'],
    ...['--eval-retrieval', beir, '--out', join(dir, 'out'), '--device', 'cpu'],
  ])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stderr, /step 2: nDCG@10 [^ ]+ \d+\.\d\d/, 'each evaluation on screen')
  t.match(r.stderr, /best nDCG@10 \d+\.\d\d at step \d/, 'the summary')
})
