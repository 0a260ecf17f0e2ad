// Fine-tuning a sentence-transformers model keeps what its folder says: its pooling (unless --pooling is given; a
// mode not implemented is an Error), its Normalize module, prompts, default prompt and similarity function; the
// evaluation during training embeds with those prompts, so its numbers are the saved model's through SentenceEncoder.
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { evaluateRetrieval, evaluateSts, readBeirDataset, readStsFile, SentenceEncoder } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import type { EvalInfo } from '../lib/train/events.js'
import { saveTinyModel, writeNormalizedModules, writePoolingConfig } from './helpers/encoder-tiny-model.js'
import { writeBeir } from './helpers/beir-folder.js'
import { tempDir, TINY_RUN, WORDS, writeSentences, writeStsFile } from './helpers/train-corpus.js'

const PROMPTS = { query: 'query: ', passage: 'passage: ', classification: 'classify: ' }

/** A tiny sentence-transformers model: mean pooling, Normalize, prompts with a default, dot-product similarity. */
async function stModel(morePrompts: Record<string, string> = {}): Promise<string> {
  const dir = await saveTinyModel({ pooling: 'mean' })
  writeNormalizedModules(dir)
  writeFileSync(
    join(dir, 'config_sentence_transformers.json'),
    JSON.stringify({ prompts: { ...PROMPTS, ...morePrompts }, default_prompt_name: 'classification', similarity_fn_name: 'dot' }),
  )
  return dir
}

const json = (file: string) => JSON.parse(readFileSync(file, 'utf8'))

t.test('a sentence-transformers model fine-tuned: its pooling, Normalize and prompts kept; evaluation with its prompts', async (t) => {
  const dir = tempDir('simcsepp-fine-tune-st-')
  const base = await stModel()
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const sts = writeStsFile(join(dir, 'sts.tsv'))
  const beir = writeBeir({
    corpus: WORDS.map((w, i) => ({ _id: `d${i}`, text: `${w} ${WORDS[(i + 2) % WORDS.length]} ${WORDS[(i + 7) % WORDS.length]}` })),
    queries: WORDS.slice(0, 6).map((w, i) => ({ _id: `q${i}`, text: w })),
    qrels: WORDS.slice(0, 6)
      .map((_, i) => `q${i}\td${i}\t1\n`)
      .join(''),
  })
  const out = join(dir, 'out')
  const messages: string[] = []
  const evals: EvalInfo[] = []
  await train(
    {
      ...TINY_RUN,
      config: undefined,
      model: base,
      data,
      out,
      device: 'cpu',
      steps: 2,
      evalEvery: 2,
      evalFiles: [sts],
      evalRetrieval: [beir],
    },
    { onMessage: (m) => void messages.push(m), onEval: (e) => void evals.push(e) },
  )
  t.ok(
    messages.some((m) => m.includes("sentence-transformers config says (--pooling cls for SimCSE's)")),
    'says it pools as the base model',
  )
  t.ok(
    messages.some((m) => m.includes("'s Normalize module and prompts")),
    'says what the output keeps',
  )
  t.equal(json(join(out, 'run', 'training_args.json')).pooling, 'mean', 'trained with mean pooling')
  t.same(
    json(join(out, 'modules.json')).map((m: { type: string }) => m.type.split('.').pop()),
    ['Transformer', 'Pooling', 'Normalize'],
  )
  t.ok(existsSync(join(out, '2_Normalize')), "Normalize's folder")
  t.match(json(join(out, '1_Pooling', 'config.json')), { pooling_mode_mean_tokens: true, pooling_mode_cls_token: false })
  t.same(json(join(out, 'config_sentence_transformers.json')), {
    prompts: PROMPTS,
    default_prompt_name: 'classification',
    similarity_fn_name: 'dot',
  })

  // The evaluation's numbers are those of the saved model as SentenceEncoder encodes it (its prompts applied).
  const best = evals.filter((e) => e.best).at(-1)!
  const enc = await SentenceEncoder.load(out, { device: 'cpu' })
  const [v] = await enc.encode(['the cat'])
  t.ok(Math.abs(Math.hypot(...v) - 1) < 1e-6, 'SentenceEncoder normalises (the Normalize module)')
  const { spearman } = await evaluateSts((s) => enc.encode(s), await readStsFile(sts))
  t.ok(
    Math.abs(spearman - best.spearman!) < 1e-6,
    `STS with the default prompt: ${spearman.toFixed(4)}, logged ${best.spearman!.toFixed(4)}`,
  )
  const retrieval = await evaluateRetrieval((s) => enc.encode(s, { prompt: '' }), await readBeirDataset(beir), {
    queryPrefix: enc.rolePrefix('query'),
    documentPrefix: enc.rolePrefix('document'),
  })
  t.equal(enc.rolePrefix('query'), 'query: ')
  t.ok(
    Math.abs(retrieval.ndcgAt10 - best.retrieval![0].ndcgAt10) < 1e-6,
    `nDCG@10 with the query and passage prompts: ${retrieval.ndcgAt10.toFixed(4)}, logged ${best.retrieval![0].ndcgAt10.toFixed(4)}`,
  )
  await enc.close()

  // --pooling given: it wins; the other settings are still kept.
  const cls = join(dir, 'cls')
  await train({ ...TINY_RUN, config: undefined, model: base, data, out: cls, device: 'cpu', steps: 1, pooling: 'cls' })
  t.equal(json(join(cls, 'run', 'training_args.json')).pooling, 'cls')
  t.match(json(join(cls, '1_Pooling', 'config.json')), { pooling_mode_cls_token: true })
  t.equal(json(join(cls, 'modules.json')).length, 3, 'Normalize kept')
})

t.test("a model with an STS prompt: training's STS evaluation embeds with it (MTEB's lookup by task type)", async (t) => {
  const dir = tempDir('simcsepp-fine-tune-st-sts-')
  const base = await stModel({ STS: `${WORDS[3]} ` })
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const sts = writeStsFile(join(dir, 'sts.tsv'))
  const out = join(dir, 'out')
  const evals: EvalInfo[] = []
  await train(
    { ...TINY_RUN, config: undefined, model: base, data, out, device: 'cpu', steps: 2, evalEvery: 2, evalFiles: [sts] },
    { onEval: (e) => void evals.push(e) },
  )
  const best = evals.filter((e) => e.best).at(-1)!
  const enc = await SentenceEncoder.load(out, { device: 'cpu' })
  const pairs = await readStsFile(sts)
  const typed = (await evaluateSts((s) => enc.encode(s, { promptName: 'STS' }), pairs)).spearman
  const byDefault = (await evaluateSts((s) => enc.encode(s), pairs)).spearman
  await enc.close()
  t.ok(Math.abs(typed - best.spearman!) < 1e-6, `STS with the "STS" prompt: ${typed.toFixed(4)}, logged ${best.spearman!.toFixed(4)}`)
  t.ok(Math.abs(typed - byDefault) > 1e-3, `the default prompt scores otherwise: ${byDefault.toFixed(4)}`)
})

t.test('a pooling mode not implemented asks for --pooling; max trains as max; a plain Hugging Face model trains with CLS', async (t) => {
  const dir = tempDir('simcsepp-fine-tune-st-pooling-')
  const data = writeSentences(join(dir, 'data.txt'), 20)
  const weighted = await saveTinyModel()
  writePoolingConfig(weighted, 'cls')
  const cfg = join(weighted, '1_Pooling', 'config.json')
  writeFileSync(cfg, JSON.stringify({ ...json(cfg), pooling_mode_cls_token: false, pooling_mode_weightedmean_tokens: true }))
  await t.rejects(
    train({ ...TINY_RUN, config: undefined, model: weighted, data, out: join(dir, 'weighted'), device: 'cpu', steps: 1 }),
    /its sentence-transformers pooling is weightedmean .* which simcsepp does not train: pass --pooling cls, mean, max or mean_sqrt_len/,
  )
  await train({
    ...TINY_RUN,
    config: undefined,
    model: weighted,
    data,
    out: join(dir, 'weighted-mean'),
    device: 'cpu',
    steps: 1,
    pooling: 'mean',
  })
  t.equal(json(join(dir, 'weighted-mean', 'run', 'training_args.json')).pooling, 'mean', 'with --pooling it trains')

  // sentence-transformers' older NLI models pool by max: fine-tuned, they keep it.
  // ... and a dot-product model's similarity_fn_name stays, said.
  const maxPool = await saveTinyModel({ pooling: 'max' })
  writeFileSync(join(maxPool, 'config_sentence_transformers.json'), JSON.stringify({ prompts: {}, similarity_fn_name: 'dot' }))
  const maxOut = join(dir, 'max')
  const messages: string[] = []
  await train(
    { ...TINY_RUN, config: undefined, model: maxPool, data, out: maxOut, device: 'cpu', steps: 1 },
    { onMessage: (m) => void messages.push(m) },
  )
  t.equal(json(join(maxOut, 'run', 'training_args.json')).pooling, 'max', "the model's max pooling, without --pooling")
  t.equal(json(join(maxOut, 'config_sentence_transformers.json')).similarity_fn_name, 'dot', 'similarity_fn_name kept')
  t.ok(
    messages.some((m) => m.includes('similarity_fn_name dot (as sentence-transformers does); the losses compare vectors by cosine')),
    'and said',
  )
  t.match(
    readFileSync(join(maxOut, 'README.md'), 'utf8'),
    /Pooling: each dimension's largest value over tokens \(the MLP head used in training is not part of the model\), dot-product similarity \(the base model's similarity_fn_name, kept\)\./,
    'the card names both',
  )
  const pooled = json(join(maxOut, '1_Pooling', 'config.json'))
  t.same(
    Object.keys(pooled).filter((k) => k.startsWith('pooling_mode_') && pooled[k] === true),
    ['pooling_mode_max_tokens'],
    'the output says max, and max alone',
  )
  const enc = await SentenceEncoder.load(maxOut, { device: 'cpu' })
  t.equal(enc.pooling, 'max', 'and encodes with it')
  await enc.close()

  const plain = await saveTinyModel()
  const out = join(dir, 'plain')
  await train({ ...TINY_RUN, config: undefined, model: plain, data, out, device: 'cpu', steps: 1 })
  t.equal(json(join(out, 'run', 'training_args.json')).pooling, 'cls', "SimCSE's CLS")
  t.equal(json(join(out, 'modules.json')).length, 2, 'no Normalize')
  t.same(json(join(out, 'config_sentence_transformers.json')), { prompts: {}, default_prompt_name: null, similarity_fn_name: 'cosine' })
})

t.test('queryPrompt and documentPrompt: the columns prefixed in training, saved as the query and document prompts', async (t) => {
  const dir = tempDir('simcsepp-fine-tune-st-prompts-')
  const base = await stModel()
  const words = (i: number, k: number) => [0, 1, 2].map((j) => WORDS[(i * k + j * 5) % WORDS.length]).join(' ')
  const rows = Array.from({ length: 24 }, (_, i) => [words(i, 3), words(i, 7), words(i, 11)])
  const csv = (file: string, prefix: string[]) =>
    writeFileSync(file, 'anchor,positive,negative\n' + rows.map((r) => r.map((s, c) => prefix[c] + s).join(',')).join('\n') + '\n')
  csv(join(dir, 'raw.csv'), ['', '', ''])
  csv(join(dir, 'prefixed.csv'), ['query: ', 'passage: ', 'passage: '])
  const run = { ...TINY_RUN, config: undefined, model: base, device: 'cpu' as const, steps: 2, batchSampler: 'random' as const }
  const prompted = join(dir, 'prompted')
  await train({ ...run, data: join(dir, 'raw.csv'), out: prompted, queryPrompt: 'query: ', documentPrompt: 'passage: ' })
  const byHand = join(dir, 'by-hand')
  await train({ ...run, data: join(dir, 'prefixed.csv'), out: byHand })
  t.same(
    readFileSync(join(prompted, 'model.safetensors')),
    readFileSync(join(byHand, 'model.safetensors')),
    'the weights of the data prefixed by hand, bit for bit',
  )
  t.same(
    json(join(prompted, 'config_sentence_transformers.json')).prompts,
    { ...PROMPTS, document: 'passage: ' },
    "saved beside the base model's",
  )
  const enc = await SentenceEncoder.load(prompted, { device: 'cpu' })
  t.same([enc.rolePrefix('query'), enc.rolePrefix('document')], ['query: ', 'passage: '], 'encodeQuery and encodeDocument apply them')
  await enc.close()
  t.match(readFileSync(join(prompted, 'README.md'), 'utf8'), '| query prompt | "query: " |', 'the model card quotes them')
  const text = writeSentences(join(dir, 'text.txt'), 20)
  await t.rejects(
    train({ ...run, data: text, out: join(dir, 'text'), queryPrompt: 'q: ' }),
    /queryPrompt and documentPrompt apply to supervised pairs\/triplets/,
  )
  await t.rejects(
    train({ ...run, data: join(dir, 'raw.csv'), out: join(dir, 'bad'), documentPrompt: 3 as never }),
    /documentPrompt must be a string/,
  )
})
