// The model card (README.md) of a run's output directory: what the model is (base, data, objective,
// hyper-parameters), how it scored, and how to load it in Python and in Node. Everything in it comes
// from the run's own record (training_args.json, the log), so it never claims what was not run.
import { basename } from 'node:path'
import type { DataFingerprint } from '../data/sentences.js'
import { exampleKind } from '../data/pairs.js'
import { modelIndexLines } from './model-index.js'
import { SELECTION_METRIC_NAMES, type Best, type EvalInfo, type StepInfo } from './events.js'
import { taskScores } from './task-evaluation.js'
import { denseModulePath } from './sentence-transformers.js'
import { hubIdOf, setLabel } from '../hub/hub-model.js'
import { isPooling, POOLING_DESCRIPTIONS } from '../model/pooling.js'
import type { SimilarityFn } from '../embed/similarity-fn.js'

/** What the card is written from. */
export interface ModelCardInput {
  /** The record of training_args.json. */
  args: Record<string, unknown>
  steps: StepInfo[]
  evals: EvalInfo[]
  best: Best
  /**
   * Each dataset the run read (one, or several in the order of args.data), with its columns when supervised (2: pairs,
   * 3: triplets, 2 + k: k hard negatives).
   */
  data: CardData[]
  /** The encoder's architecture by name ('ModernBERT'); 'BERT' when not given. */
  architecture?: string
  /** The sentence-transformers Dense modules trained after the pooling (their folders 2_Dense/, ...); 0 when not given. */
  denseModules?: number
  /** The saved model's similarity_fn_name (a base model's, kept); 'cosine' when not given. */
  similarityFn?: SimilarityFn
}

/** How the card names each similarity function. */
const SIMILARITY_WORDS: Record<SimilarityFn, string> = {
  cosine: 'cosine similarity',
  dot: "dot-product similarity (the base model's similarity_fn_name, kept)",
  euclidean: "negative euclidean distance (the base model's similarity_fn_name, kept)",
  manhattan: "negative manhattan distance (the base model's similarity_fn_name, kept)",
}

type CardData = DataFingerprint & { columns?: number }

const OBJECTIVES: Record<string, string> = {
  'simcse++': 'SimCSE++: off-dropout InfoNCE (negatives from a dropout-free view) + λ·DCL (dimension-wise contrast)',
  'off-dropout': 'off-dropout InfoNCE (negatives from a dropout-free view)',
  dcl: 'DCL (dimension-wise contrastive learning)',
  simcse: 'SimCSE: InfoNCE between two dropout views of each sentence, in-batch negatives',
  distill: "distillation: the mean squared error between its vectors and the teacher's (sentence-transformers' MSELoss)",
}

// The hyper-parameters listed, in order, with their training_args.json names.
const HYPER = [
  ['batch size', 'batchSize'],
  ['batch sampler', 'batchSampler'],
  ['dataset sampler', 'datasetSampler'],
  ['hard negatives per example', 'negativesPerExample'],
  ['symmetric loss', 'symmetric'],
  ['teacher', 'teacher'],
  ['teacher projected onto', 'teacherProjection'],
  ['query prompt', 'queryPrompt'],
  ['document prompt', 'documentPrompt'],
  ['max length (tokens)', 'maxLen'],
  ['learning rate', 'lr'],
  ['epochs', 'epochs'],
  ['steps', 'totalSteps'],
  ['warm-up steps', 'warmup'],
  ['warm-up ratio', 'warmupRatio'],
  ['learning-rate schedule', 'lrSchedule'],
  ['weight decay', 'weightDecay'],
  ['gradient clipping', 'gradClip'],
  ['temperature', 'temperature'],
  ['positive scale', 'posScale'],
  ['DCL weight', 'dclWeight'],
  ['DCL temperature', 'dclTemperature'],
  ['dropout', 'dropout'],
  ['pooling', 'pooling'],
  ['precision', 'precision'],
  ['device', 'device'],
  ['seed', 'seed'],
] as const

/** How a dataset is described: what it holds, the objective it trained with, the card's tag for it. */
function trainedOn(objective: string, data: CardData) {
  const supervised = data.columns !== undefined
  const cosent = objective === 'cosent' || objective === 'angle'
  const distill = objective === 'distill'
  const what = cosent
    ? `${data.lines} scored pairs`
    : distill && supervised
      ? `${data.lines} parallel pairs`
      : supervised
        ? `${data.lines} ${exampleKind(data.columns!)}`
        : `${data.lines} sentences`
  const objectiveText = distill
    ? `${OBJECTIVES.distill}${supervised ? ', both sentences of each pair taught the vector of the first' : ''}`
    : cosent
      ? objective === 'angle'
        ? "AnglE over scored pairs: the pairs' angle similarities ranked in the order of their gold scores"
        : 'CoSENT over scored pairs: the cosines of the pairs ranked in the order of their gold scores'
      : supervised
        ? `supervised SimCSE: InfoNCE of each anchor against its positive, with the batch's other positives${data.columns! > 2 ? ' and every hard negative of the batch' : ''} as negatives`
        : (OBJECTIVES[objective] ?? objective)
  return { objective, what, objectiveText, tag: supervised && !cosent && !distill ? 'simcse' : objective }
}

// The options that only some objectives use.
const ONLY_FOR: Record<string, string[]> = {
  posScale: ['simcse++', 'off-dropout'],
  dclWeight: ['simcse++'],
  dclTemperature: ['simcse++', 'dcl'],
  temperature: ['simcse++', 'off-dropout', 'simcse', 'cosent', 'angle'],
}

/**
 * The card of a folder named `folder` as pushed to the Hub repository `repoId` at `revision`: its usage examples load
 * the model by that id instead of 'path/to/FOLDER', at that revision unless it is main (Python's `revision=` argument,
 * our `id@revision`), so that a card pushed to a branch loads the branch's model, not main's. Other text is left as it
 * is.
 */
export function cardForRepo(card: string, folder: string, repoId: string, revision = 'main'): string {
  const onMain = revision === 'main'
  return card
    .replace(`SentenceTransformer("path/to/${folder}")`, `SentenceTransformer("${repoId}"${onMain ? '' : `, revision="${revision}"`})`)
    .replace(`SentenceEncoder.load('path/to/${folder}')`, `SentenceEncoder.load('${repoId}${onMain ? '' : `@${revision}`}')`)
}

export function modelCard({
  args,
  steps,
  evals,
  best,
  data,
  architecture = 'BERT',
  denseModules = 0,
  similarityFn = 'cosine',
}: ModelCardInput): string {
  const at = (k: string, i: number) => (Array.isArray(args[k]) ? (args[k] as unknown[])[i] : args[k])
  const sets = data.map((d, i) => ({
    ...d,
    ...trainedOn(String(at('objective', i)), d),
    path: String(at('data', i)),
    format: at('format', i),
  }))
  const multi = sets.length > 1
  const [first] = sets
  const objective = first.objective
  const objectives = sets.map((d) => d.objective)
  const supervised = sets.some((d) => d.columns !== undefined)
  const dataLine = (d: (typeof sets)[number]) =>
    `\`${setLabel(d.path)}\`, ${d.what}, read as ${String(d.format ?? 'text')} (${d.bytes} bytes, SHA-256 ${d.sha256.slice(0, 16)}…)`
  const sampler = args.datasetSampler === 'round-robin' ? 'in turn' : 'at random, in proportion to their batches'
  const dataLines = multi
    ? [
        `- Data: ${sets.length} datasets, each step a batch of one of them, taken ${sampler}:`,
        ...sets.map((d) => `  - ${dataLine(d)}: \`${d.objective}\`, ${d.objectiveText}`),
      ]
    : [
        `- Data: ${dataLine(first)}`,
        `- Objective: \`${objective}\`${first.columns !== undefined && objective !== 'distill' ? ' (supervised)' : ''}`,
      ]
  // (a Hub model by its id: the folder is its snapshot in the cache, named by a commit)
  const kept = Array.isArray(args.keepLayers) ? `, its layers ${args.keepLayers.join(', ')} kept (keepLayers)` : ''
  const base = args.model
    ? `\`${hubIdOf(String(args.model)) ?? basename(String(args.model))}\` (${String(args.model)})${kept}`
    : `random initialisation (\`${JSON.stringify(args.config ?? 'mini')}\` size)`
  const dims = Array.isArray(args.matryoshkaDims) ? (args.matryoshkaDims as number[]) : null
  const rows = HYPER.filter(
    ([, k]) =>
      args[k] !== undefined &&
      args[k] !== null &&
      (!ONLY_FOR[k] || objectives.some((o) => ONLY_FOR[k].includes(o))) &&
      (k !== 'batchSampler' || supervised) && // plain text is always batched in shuffled order
      (k !== 'datasetSampler' || multi) &&
      (k !== 'symmetric' || args[k] === true),
  )
  const last = steps.at(-1)
  const baseId = args.model ? hubIdOf(String(args.model)) : null
  const lines = [
    '---',
    'library_name: sentence-transformers',
    'pipeline_tag: sentence-similarity',
    // (the Hub's model tree links a fine-tune to its base by this field)
    ...(baseId ? [`base_model: ${baseId}`] : []),
    'tags:',
    '  - sentence-transformers',
    '  - feature-extraction',
    '  - sentence-similarity',
    ...[...new Set(sets.map((d) => `  - ${d.tag}`))],
    ...(dims ? ['  - matryoshka'] : []),
    ...modelIndexLines(basename(String(args.out ?? 'model')), evals, best),
    '---',
    '',
    `# ${basename(String(args.out ?? 'model'))}`,
    '',
    `A ${architecture} sentence encoder trained with simcsepp (SimCSE and SimCSE++ training for Node.js): ` +
      (multi ? `${sets.length} datasets, each with its own objective.` : `${first.objectiveText}.`),
    '',
    '## Training',
    '',
    `- Base model: ${base}`,
    ...dataLines,
    last ? `- Trained ${last.step} steps; final loss ${last.loss.toFixed(4)}` : '- Not trained (0 steps): the initialised model',
    ...(dims ? matryoshkaLines(dims, args.matryoshkaWeights, last) : []),
    '',
    '| hyper-parameter | value |',
    '| --- | --- |',
    // Prompts quoted: their spaces matter.
    ...rows.map(([name, k]) => `| ${name} | ${/Prompt$/.test(k) ? JSON.stringify(args[k]) : String(args[k])} |`),
    '',
    '## Evaluation',
    '',
    ...evaluationTable(evals, best),
    '',
    '## Usage',
    '',
    'Python, with [sentence-transformers](https://www.sbert.net):',
    '',
    '```python',
    'from sentence_transformers import SentenceTransformer',
    '',
    `model = SentenceTransformer("path/to/${basename(String(args.out ?? 'model'))}")`,
    'embeddings = model.encode(["A man is playing a guitar.", "Someone plays an instrument."])',
    'print(model.similarity(embeddings, embeddings))',
    '```',
    '',
    'Node, with simcsepp:',
    '',
    '```js',
    "import { SentenceEncoder } from 'simcsepp'",
    '',
    `const encoder = await SentenceEncoder.load('path/to/${basename(String(args.out ?? 'model'))}')`,
    "const [a, b] = await encoder.encode(['A man is playing a guitar.', 'Someone plays an instrument.'])",
    'console.log(encoder.similarity(a, b))',
    'await encoder.close()',
    '```',
    '',
    ...(dims ? matryoshkaUsage(dims) : []),
    `Pooling: ${isPooling(args.pooling) ? POOLING_DESCRIPTIONS[args.pooling] : POOLING_DESCRIPTIONS.cls}${
      denseModules
        ? `, then the model's ${denseModules} Dense module${denseModules > 1 ? 's' : ''} (trained with the encoder)`
        : ' (the MLP head used in training is not part of the model)'
    }, ${SIMILARITY_WORDS[similarityFn]}.`,
    '',
    '## Files',
    '',
    '- The model, at the top of the folder: `config.json`, `model.safetensors`, the tokenizer (`tokenizer.json`, `vocab.txt`,',
    '  `tokenizer_config.json`), the sentence-transformers files (`modules.json`, `sentence_bert_config.json`,',
    `  \`config_sentence_transformers.json\`, \`1_Pooling/\`${Array.from({ length: denseModules }, (_, i) => `, \`${denseModulePath(i)}/\``).join('')}) and this card.`,
    '- The run, kept apart in `run/` (not needed to use the model; safe to delete once training is over):',
    '  `training_args.json`, `train.jsonl` (every step and evaluation), `metrics.json`, `loss_curve.svg`, and `checkpoint/`',
    `  (weights with ${denseModules ? 'the Dense modules' : 'the MLP head'}, optimizer state, data position, a copy of the tokenizer: for \`simcsepp train --resume\`, not for inference).`,
    '',
  ]
  return lines.join('\n')
}

/** The Matryoshka dimensions the run trained, their weights and final losses. */
function matryoshkaLines(dims: number[], weights: unknown, last: StepInfo | undefined): string[] {
  const w = Array.isArray(weights) ? (weights as number[]) : dims.map(() => 1)
  const lines = [
    `- Matryoshka: the loss summed over the vectors' first ${dims.join(', ')} dimensions (weights ${w.join(', ')}), so the vectors`,
    '  may be cut to any of those sizes (and normalised again) for smaller indexes and faster search',
  ]
  if (last?.dimLosses)
    lines.push(
      `- Final loss per dimension: ${Object.entries(last.dimLosses)
        .sort(([a], [b]) => Number(b) - Number(a))
        .map(([d, l]) => `${d}: ${l.toFixed(4)}`)
        .join(', ')}`,
    )
  return lines
}

/** How to load the vectors cut to a trained size, in Python and in Node. */
function matryoshkaUsage(dims: number[]): string[] {
  const d = Math.min(...dims)
  return [
    `Cut to a trained size (Matryoshka), e.g. ${d}: \`SentenceTransformer(path, truncate_dim=${d})\` in Python,`,
    `\`SentenceEncoder.load(path, { truncateDim: ${d} })\` or \`--truncate-dim ${d}\` in Node.`,
    '',
  ]
}

/** The evaluations as a table of their scores ×100 (the best step marked), or a line saying there were none. */
function evaluationTable(evals: EvalInfo[], best: Best): string[] {
  if (!evals.length)
    return [
      'No evaluation was run (`--eval-file` gives STS Spearman, `--eval-retrieval` nDCG@10, `--eval-classification` and the other ' +
        'task kinds their main scores during training; `simcsepp eval` after).',
    ]
  const files = evals[0].results.map((r) => setLabel(r.file))
  const sets = (evals[0].retrieval ?? []).map((r) => `${setLabel(r.dataset)} (${r.split})`)
  const tasks = taskScores(evals[0]).map((r) => `${r.set} ${r.measure}`)
  // Matryoshka runs: the first file again on the vectors cut to each trained size.
  const dims = Object.keys(evals[0].dimSpearman ?? {}).sort((a, b) => Number(b) - Number(a))
  const headers = [
    ...files,
    ...(files.length ? ['average'] : []),
    ...dims.map((d) => `@${d}`),
    ...sets.map((s) => `${s} nDCG@10`),
    ...tasks,
  ]
  const cells = (e: EvalInfo) => [
    ...e.results.map((r) => r.spearman.toFixed(2)),
    ...(files.length ? [e.average?.toFixed(2) ?? ''] : []),
    ...dims.map((d) => e.dimSpearman?.[d]?.toFixed(2) ?? ''),
    ...(e.retrieval ?? []).map((r) => (100 * r.ndcgAt10).toFixed(2)),
    ...taskScores(e).map((r) => (100 * r.score).toFixed(2)),
  ]
  const about = [
    ...(files.length ? ['STS Spearman × 100 (cosine of sentence vectors against the gold scores)'] : []),
    ...(dims.length ? [`\`@d\`: \`${files[0]}\` on the vectors cut to their first d values`] : []),
    ...(sets.length ? ["nDCG@10 × 100 of exact cosine search over each retrieval set's corpus"] : []),
    ...(tasks.length ? ["MTEB's task kinds' main scores × 100 (as `simcsepp eval` computes them)"] : []),
  ]
  // What selected the model: as the last evaluation records it; logs from before that was recorded: STS, else retrieval.
  const selection = evals[evals.length - 1].selection
  const selectedBy = selection
    ? selection.metric === 'spearman'
      ? `\`${selection.set}\``
      : selection.metric === 'mean' || selection.metric === 'meanByType'
        ? `the ${SELECTION_METRIC_NAMES[selection.metric]} over its ${selection.set}`
        : `\`${selection.set}\`'s ${SELECTION_METRIC_NAMES[selection.metric]}`
    : files.length
      ? `\`${files[0]}\``
      : `\`${sets[0]}\`'s nDCG@10`
  return [
    `${about.join('; ')}. The model saved is the best of ${selectedBy}${dims.length ? ' (whole vectors)' : ''}.`,
    '',
    `| step | ${headers.join(' | ')} |`,
    `| --- |${headers.map(() => ' --- |').join('')}`,
    ...evals.map((e) => `| ${e.step}${best && e.step === best.step ? ' (saved)' : ''} | ${cells(e).join(' | ')} |`),
  ]
}
