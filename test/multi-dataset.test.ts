// Several datasets in one run (`--data A --data B ...`, sentence-transformers' multi-dataset training): each step a
// batch of one dataset with that dataset's objective, by a seeded schedule (proportional: every batch of every dataset
// once per epoch; round-robin: in turn). Held here: the schedule's counts and order, each step's loss being its
// dataset's objective (the first step bit for bit the single-file run's), an interrupted run resumed to the same bits,
// the record (training_args, checkpoint, model card, loss curve), refusals, the command line, and emulated CUDA (one
// set of step graphs per dataset over the shared arena) against the CPU.
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { cudaStatus } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import { DatasetSchedule, perDataset } from '../lib/train/datasets.js'
import { BatchStream } from '../lib/data/sentences.js'
import type { StepInfo } from '../lib/train/events.js'
import { checkCudaMatchesCpu } from './helpers/cuda-vs-cpu.js'
import { cli, needsCli, tempDir, TINY_RUN, WORDS, writeSentences } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-multi-dataset-')
let seed = 11
const rnd = (k: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % k
const words = (n: number) => Array.from({ length: n }, () => WORDS[rnd(WORDS.length)]).join(' ')
const write = (name: string, lines: string[]) => {
  const p = join(dir, name)
  writeFileSync(p, lines.join('\n') + '\n')
  return p
}
// NLI-like triplets (supervised SimCSE), STS-like scored pairs (CoSENT), and plain sentences (SimCSE++).
const nli = write('nli.csv', ['anchor,positive,negative', ...Array.from({ length: 30 }, () => `${words(5)},${words(5)},${words(5)}`)])
const sts = write('sts.csv', ['sentence1,sentence2,score', ...Array.from({ length: 20 }, (_, i) => `${words(5)},${words(5)},${i % 6}`)])
const text = join(dir, 'text.txt')
writeSentences(text, 40)
const data = [nli, sts, text]
const objective = ['simcse', 'cosent', 'simcse++'] as const
// Batches per epoch at batch size 8: 30 -> 4 (the last of 6), 20 -> 3 (of 4), 40 -> 5.
const BATCHES = [4, 3, 5]
// The runs here train on the CPU: under npm run test:emulated 'auto' would pick the emulated GPU, where the three
// datasets' 24 steps alone took over 4 minutes; the CUDA path has its own check at the end of the file.
const CPU = 'cpu' as const
const run = { ...TINY_RUN, device: CPU, data: [...data], objective: [...objective], epochs: 2, steps: undefined, saveEvery: 0 }
const PARTS = ['simcse', 'cosent', 'offDropout,dcl']

t.test('the schedule: every batch of every dataset once per epoch, in a seeded order; round-robin in turn', async (t) => {
  const s = new DatasetSchedule(BATCHES, 'proportional', 42)
  t.equal(s.stepsPerEpoch, 12)
  const epoch = (e: number) => Array.from({ length: 12 }, (_, i) => s.at(12 * e + i))
  for (const e of [0, 1, 5]) {
    const at = epoch(e)
    t.ok(
      at.every((x) => x.epoch === e),
      `epoch ${e}'s steps`,
    )
    t.same(
      [0, 1, 2].map((d) => at.filter((x) => x.dataset === d).length),
      BATCHES,
      `epoch ${e}: each dataset as often as it has batches`,
    )
  }
  const order = (x: DatasetSchedule, e: number) => Array.from({ length: 12 }, (_, i) => x.at(12 * e + i).dataset).join('')
  t.equal(order(new DatasetSchedule(BATCHES, 'proportional', 42), 1), order(s, 1), 'the same seed, the same order (at any step first)')
  t.not(order(s, 0), order(s, 1), 'another order each epoch')
  t.not(order(new DatasetSchedule(BATCHES, 'proportional', 43), 0), order(s, 0), 'another seed, another order')
  const rr = new DatasetSchedule(BATCHES, 'round-robin', 42)
  t.equal(rr.stepsPerEpoch, 9, "3 datasets x the smallest one's 3 batches")
  t.equal(order(rr, 0).slice(0, 9), '012012012')
  t.same(rr.at(9), { dataset: 0, epoch: 1 })
  t.same(new DatasetSchedule([7], 'proportional', 1).at(20), { dataset: 0, epoch: 2 }, 'one dataset: every step its own')
  t.throws(() => new DatasetSchedule([3, 0], 'proportional', 1), /every dataset needs at least one batch per epoch/)
  t.same(perDataset('objective', 'simcse', 2), ['simcse', 'simcse'])
  t.throws(
    () => perDataset('objective', ['simcse'], 2),
    /train: objective must be one value for every dataset or one per dataset \(2; got 1\)/,
  )
  t.equal(BatchStream.batchesPerEpoch(30, 8), BATCHES[0])
})

t.test('a run of three datasets trains each step on one of them with its objective, and records them', async (t) => {
  const out = join(dir, 'three')
  const steps: StepInfo[] = []
  const messages: string[] = []
  const r = await train({ ...run, out }, { onStep: (s) => void steps.push(s), onMessage: (m) => void messages.push(m) })
  t.equal(r.steps, 24, '2 epochs of 4 + 3 + 5 batches')
  const schedule = new DatasetSchedule(BATCHES, 'proportional', TINY_RUN.seed)
  t.same(
    steps.map((s) => s.dataset),
    steps.map((_, i) => schedule.at(i).dataset),
    'the datasets in the order of the schedule',
  )
  for (const s of steps) {
    const d = s.dataset!
    if (Object.keys(s.parts).join() !== PARTS[d] || !Number.isFinite(s.loss))
      t.fail(`step ${s.step}: dataset ${d}'s loss has parts ${Object.keys(s.parts).join()}, not ${PARTS[d]}`)
    if (s.epoch !== Math.floor((s.step - 1) / 12)) t.fail(`step ${s.step}: epoch ${s.epoch}`)
  }
  t.same(
    [0, 1, 2].map((d) => steps.filter((s) => s.dataset === d).length),
    BATCHES.map((b) => 2 * b),
    'each dataset its batches, twice',
  )
  // The last batch of each epoch holds what is left: 6 triplets, 4 pairs.
  t.same([...new Set(steps.filter((s) => s.dataset === 0).map((s) => s.batchSize))].sort(), [6, 8])
  t.match(
    messages.join('\n'),
    /3 datasets, each step a batch of one of them \(proportional\): 12 steps per epoch, nli\.csv simcse, sts\.csv cosent, text\.txt simcse\+\+/,
  )
  const args = JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8'))
  t.match(args, {
    data,
    objective,
    format: ['csv', 'csv', 'text'],
    column: [null, null, null],
    datasetSampler: 'proportional',
    totalSteps: 24,
  })
  t.notOk('datasets' in args, 'the resolved list is not recorded beside the options')
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /3 datasets, each with its own objective/)
  t.match(card, /- Data: 3 datasets, each step a batch of one of them, taken at random, in proportion to their batches:/)
  t.match(card, / {2}- `nli\.csv`, 30 triplets .*: `simcse`, supervised SimCSE/)
  t.match(card, / {2}- `sts\.csv`, 20 scored pairs, read as csv .*: `cosent`, CoSENT over scored pairs/)
  t.match(card, / {2}- `text\.txt`, 40 sentences, read as text .*: `simcse\+\+`, SimCSE\+\+/)
  t.match(card, /\| dataset sampler \| proportional \|/)
  t.match(card, /\| DCL weight \| 0\.1 \|/, "SimCSE++'s settings listed: one dataset trains with it")
  const svg = readFileSync(join(out, 'run', 'loss_curve.svg'), 'utf8')
  for (const name of ['nli.csv (simcse)', 'sts.csv (cosent)', 'text.txt (simcse++)']) t.ok(svg.includes(name), `the loss curve of ${name}`)
})

t.test("a step on one dataset is that dataset's step: the first is the single-file run's, bit for bit", async (t) => {
  const multi: StepInfo[] = []
  await train({ ...run, steps: 1, out: join(dir, 'first') }, { onStep: (s) => void multi.push(s) })
  const d = multi[0].dataset!
  const single: StepInfo[] = []
  // The same vocabulary (the multi-dataset run's is built from every file).
  const tokenizer = join(dir, 'first', 'vocab.txt')
  await train(
    { ...TINY_RUN, device: CPU, steps: 1, data: data[d], objective: objective[d], tokenizer, saveEvery: 0, out: join(dir, 'single') },
    {
      onStep: (s) => void single.push(s),
    },
  )
  t.equal(multi[0].loss, single[0].loss, `dataset ${d}: loss ${single[0].loss}`)
  t.equal(multi[0].gradNorm, single[0].gradNorm)
  // A list of one file is that file.
  await train({
    ...TINY_RUN,
    device: CPU,
    steps: 1,
    data: [data[d]],
    objective: [objective[d]],
    tokenizer,
    saveEvery: 0,
    out: join(dir, 'list-of-one'),
  })
  t.ok(
    readFileSync(join(dir, 'list-of-one', 'model.safetensors')).equals(readFileSync(join(dir, 'single', 'model.safetensors'))),
    'identical weights',
  )
  t.equal(JSON.parse(readFileSync(join(dir, 'list-of-one', 'run', 'training_args.json'), 'utf8')).data, data[d])
})

t.test('interrupted and resumed, a run of several datasets ends with the uninterrupted weights, bit for bit', async (t) => {
  const rr = { ...run, datasetSampler: 'round-robin' as const, saveEvery: 4 }
  const whole = join(dir, 'whole')
  await train({ ...rr, out: whole })
  const out = join(dir, 'resumed')
  const ctl = new AbortController()
  const first = await train({ ...rr, out }, { signal: ctl.signal, onStep: (s) => void (s.step === 7 && ctl.abort()) })
  t.equal(first.interrupted, true)
  const state = JSON.parse(readFileSync(join(out, 'run', 'checkpoint', 'state.json'), 'utf8'))
  t.same(state.dataPosition, { epoch: 0, index: 7 }, "the schedule's place")
  t.equal(state.datasets.length, 3, "each dataset's position and fingerprint")
  t.notOk('data' in state)
  const rest = await train({ ...rr, out, resume: out })
  t.equal(rest.steps, 18, '2 epochs of 3 x 3 batches')
  t.ok(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors'))), 'identical final weights')
  // Another set of files, or another schedule, is another run.
  await t.rejects(
    train({ ...rr, data: [nli, sts], objective: ['simcse', 'cosent'], out, resume: out }),
    /the checkpointed run read 3 data file\(s\), this one 2/,
  )
  await t.rejects(
    train({ ...rr, datasetSampler: 'proportional', out, resume: out }),
    /option datasetSampler was "round-robin" in the checkpointed run, now "proportional"/,
  )
  writeFileSync(join(dir, 'changed.csv'), readFileSync(sts, 'utf8').replace(/,0\n/, ',1\n'))
  await t.rejects(
    train({ ...rr, data: [nli, join(dir, 'changed.csv'), text], out, resume: out }),
    /--resume: the data file .*changed\.csv is not the one the checkpointed run read/,
  )
})

t.test('prompts once for every supervised dataset, or one per dataset; the output saves the first dataset’s', async (t) => {
  // The schedule's first step is sts.csv's (dataset 1): its prompts are q2: and passage:.
  const schedule = new DatasetSchedule(BATCHES, 'proportional', TINY_RUN.seed)
  t.equal(schedule.at(0).dataset, 1)
  const prompts = { queryPrompt: ['query: ', 'q2: ', ''], documentPrompt: 'passage: ' }
  const multi: StepInfo[] = []
  const messages: string[] = []
  const out = join(dir, 'prompts')
  await train({ ...run, ...prompts, steps: 1, out }, { onStep: (s) => void multi.push(s), onMessage: (m) => void messages.push(m) })
  t.match(messages.join('\n'), /the output's query prompt is "query: " \(.*nli\.csv's\); .*sts\.csv trained with "q2: "/)
  const args = JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8'))
  t.same([args.queryPrompt, args.documentPrompt], [['query: ', 'q2: ', null], 'passage: '], 'recorded per dataset, or once')
  t.same(JSON.parse(readFileSync(join(out, 'config_sentence_transformers.json'), 'utf8')).prompts, {
    query: 'query: ',
    document: 'passage: ',
  })
  // The step is the single-file run's with sts.csv's prompts, bit for bit (the same vocabulary), and not the one without.
  const tokenizer = join(out, 'vocab.txt')
  const single: StepInfo[] = []
  const one = { ...TINY_RUN, device: CPU, steps: 1, data: sts, objective: 'cosent' as const, tokenizer, saveEvery: 0 }
  await train(
    { ...one, queryPrompt: 'q2: ', documentPrompt: 'passage: ', out: join(dir, 'prompts-single') },
    { onStep: (s) => void single.push(s) },
  )
  const bare: StepInfo[] = []
  await train({ ...one, out: join(dir, 'prompts-bare') }, { onStep: (s) => void bare.push(s) })
  t.equal(multi[0].loss, single[0].loss, `sts.csv with its prompts: loss ${single[0].loss}`)
  t.not(multi[0].loss, bare[0].loss, `without them: ${bare[0].loss}`)
  // A prompt for the text file among different ones (the same for all is once for all); a count off.
  await t.rejects(
    train({ ...run, queryPrompt: ['q: ', 'x: ', 'q: '], out: join(dir, 'prompts-text') }),
    /queryPrompt and documentPrompt apply to supervised pairs\/triplets, not to .*text\.txt: give '' for it/,
  )
  await t.rejects(
    train({ ...run, queryPrompt: ['q: ', 'q: '], out: join(dir, 'prompts-count') }),
    /train: queryPrompt must be one value for every dataset or one per dataset \(3; got 2\)/,
  )
})

t.test('refusals name the file and the option', async (t) => {
  const out = join(dir, 'refused')
  await t.rejects(
    train({ ...run, objective: ['simcse', 'cosent'], out }),
    /train: objective must be one value for every dataset or one per dataset \(3; got 2\)/,
  )
  await t.rejects(train({ ...run, objective: 'cosent', out }), /text\.txt: train: objective cosent trains on scored pairs/)
  await t.rejects(train({ ...run, data: [nli, sts], objective: 'cosent', out }), /nli\.csv: line 1: scored pairs need a score column/)
  await t.rejects(
    train({ ...run, objective: ['simcse', 'cosent', 'cosent'], out }),
    /text\.txt: train: objective cosent trains on scored pairs/,
  )
  await t.rejects(train({ ...run, data: [], out }), /train: option data \(a file of sentences, or an array of data files\) is required/)
  await t.rejects(
    train({ ...run, datasetSampler: 'random' as never, out }),
    /train: datasetSampler must be proportional or round-robin \(got "random"\)/,
  )
  await t.rejects(
    train({ ...TINY_RUN, device: CPU, data: text, objective: ['simcse', 'simcse'] as never, out }),
    /format, column, objective and the prompts take one value per data file: give data as an array of files/,
  )
  await t.rejects(
    train({ ...run, symmetric: false, queryPrompt: 'q: ', data: [text, text], objective: undefined, out }),
    /queryPrompt and documentPrompt apply to supervised pairs/,
  )
  t.notOk(existsSync(join(out, 'model.safetensors')), 'nothing trained')
})

t.test('the command line: --data repeated, --objective once per --data', { ...needsCli }, async (t) => {
  const out = join(dir, 'cli')
  const args = ['train', '--config', 'tiny', '--batch-size', '8', '--max-len', '12', '--eval-every', '0', '--steps', '3']
  const r = spawnSync(
    process.execPath,
    [
      cli,
      ...args,
      '--data',
      nli,
      '--data',
      sts,
      '--objective',
      'simcse',
      '--objective',
      'cosent',
      '--dataset-sampler',
      'round-robin',
      '--query-prompt',
      'query: ',
      '--query-prompt',
      '',
      '--out',
      out,
    ],
    { encoding: 'utf8' },
  )
  t.equal(r.status, 0, r.stderr)
  t.same(
    JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')).queryPrompt,
    ['query: ', null],
    '--query-prompt once per --data',
  )
  t.match(r.stderr, /\nloss of data 1 \S+ {2}\d+\.\d{4} -> \d+\.\d{4}\nloss of data 2 /, "the summary: each dataset's loss curve")
  const log = readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.same(
    log.map((e) => [e.dataset, Object.keys(e.parts).join()]),
    [
      [0, 'simcse'],
      [1, 'cosent'],
      [0, 'simcse'],
    ],
  )
  const bad = spawnSync(process.execPath, [cli, ...args, '--data', nli, '--data', sts, '--dataset-sampler', 'x', '--out', out], {
    encoding: 'utf8',
  })
  t.match(bad.stderr, /--dataset-sampler must be one of proportional, round-robin/)
})

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

t.test('on CUDA (fp32, a set of step graphs per dataset) a run of several datasets ends with the CPU weights', { skip }, async (t) => {
  // Two datasets in turn: each one's steps eager, captured, then replayed, between the other's.
  const objective = ['cosent' as const, 'simcse++' as const]
  const rr = { ...run, data: [sts, text], objective, steps: 6, lr: 1e-4, datasetSampler: 'round-robin' as const }
  await checkCudaMatchesCpu(t, rr, dir, 'multi')
})
