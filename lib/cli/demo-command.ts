// `simcsepp train` with no options: the demo (lib/demo/demo.ts computes it) with the training display,
// then the retrieval scores before and after, and a few nearest neighbours, on stdout.
import { runDemo, type DemoOptions, type NeighbourExample } from '../demo/demo.js'
import { formatTable } from './tables.js'
import { TrainingDisplay } from './train-display.js'

const print = (s = '') => process.stdout.write(s + '\n')

export async function demoCommand(options: DemoOptions): Promise<void> {
  const display = new TrainingDisplay()
  const r = await display.run((hooks) =>
    runDemo(options, {
      ...hooks,
      onPlan(p) {
        print(`simcsepp demo: SimCSE++ on ${p.trainSentences} WordNet example sentences, a '${p.config}' BERT from random initialisation`)
        print(`held out: ${p.queries} word senses with two examples each (query -> its sense's other example)\n`)
      },
      onRetrieval(r) {
        display.say(`step ${r.step}: held-out retrieval recall@1 ${r.recallAt1.toFixed(1)}%  MRR ${r.mrr.toFixed(3)}`)
      },
    }),
  )
  display.summary(r.training)
  if (!r.after) return
  print('\nRetrieval of the held-out senses (query: one example, answer: the other example of the same sense):')
  print(
    formatTable(
      ['model', 'recall@1 %', 'MRR'],
      [
        ['random init', r.before.recallAt1.toFixed(1), r.before.mrr.toFixed(3)],
        ...r.progress.map((p) => [`after ${p.step} steps`, p.recallAt1.toFixed(1), p.mrr.toFixed(3)]),
        [`after ${r.steps} steps`, r.after.recallAt1.toFixed(1), r.after.mrr.toFixed(3)],
        ['chance', (100 / r.queries).toFixed(1), '-'],
      ],
    ),
  )
  for (const e of r.examples) printNeighbours(e)
  print(`\nThe model is in ${r.out} (config.json, model.safetensors, vocab.txt, tokenizer.json, sentence-transformers files).`)
  print(`Embed with it: npx simcsepp encode --model ${r.out} "a sentence" "another sentence"`)
}

function printNeighbours(e: NeighbourExample): void {
  const lines = (matches: NeighbourExample['before']) => matches.map((m) => `${m.score.toFixed(2)}  ${m.text}`).join('\n          ')
  print(`\nNearest held-out answers for: "${e.query}"  (true answer: "${e.answer}")`)
  print('  before: ' + lines(e.before))
  print('  after:  ' + lines(e.after))
}
