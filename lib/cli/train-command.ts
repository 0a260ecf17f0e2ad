// `simcsepp train`: flags -> train() options, with a progress bar on a TTY, eval results on screen,
// and a summary (loss sparkline, best STS, where the files are) at the end.
import { train, type TrainOptions } from '../train/train.js'
import { OBJECTIVES } from '../train/objective.js'
import { DATA_FORMATS } from '../data/pairs.js'
import { BATCH_SAMPLERS, OPTION_RANGES as R, SELECT_BY } from '../train/options.js'
import { DATASET_SAMPLERS } from '../train/datasets.js'
import { DEVICE_REQUESTS } from '../device.js'
import { PRECISION_REQUESTS } from '../model/precision.js'
import { num, numList, oneOf, parseFlags, UsageError } from './args.js'
import { LR_SCHEDULES } from '../optim/adamw.js'
import { MATRYOSHKA_WEIGHT_MAX } from '../train/matryoshka-options.js'
import { demoCommand } from './demo-command.js'
import { TrainingDisplay } from './train-display.js'
import { resumeOptions } from '../train/resume-options.js'
import { fileProgressBars, resolveDataFlags, resolveModelFlag } from './hub-download.js'
import { hubToken } from '../hub/hub-model.js'
import { isBranchName, isPushableRepoId, pushToHub } from '../hub/hub-push.js'
import { POOLINGS } from '../model/pooling.js'

export const trainUsage = `simcsepp train [options]
  With no options: the demo (a tiny model trained from scratch with SimCSE++ on WordNet's example
  sentences, a few minutes on a laptop CPU; writes ./simcsepp-demo).

  Model       --model DIR (Hugging Face BERT/RoBERTa/XLM-R/DistilBERT/MPNet/ModernBERT) | --config tiny|mini|small|base
              [--tokenizer DIR|FILE]
              --keep-layers 1,4,7,10: only those encoder layers of --model (by index), renumbered from 0:
              a smaller student initialised from its teacher (sentence-transformers' model_distillation)
  Data        --data FILE: one sentence per line, or supervised pairs/triplets: CSV/TSV with a header
              sent0,sent1[,hard_neg] (or anchor,positive[,negative]; several hard negatives:
              negative_1,...,negative_k), JSONL with those keys, Parquet with those columns (a Hugging
              Face dataset's files), or FlagEmbedding's JSONL (query, pos [...], neg [...]): each example
              drawn every epoch with a random positive and --negatives-per-example 7 negatives (n-tuples:
              that many of each example's negatives drawn every epoch)
              --format auto|text|csv|tsv|jsonl|parquet (auto: by extension, else by the first bytes)
              --column NAME: train on a Parquet column (JSON Lines field) of sentences as on a text file's
              lines (default: the only one, or text/sentence/..., when they are not named as pairs)
              --batch-sampler no-duplicates|random (pairs/triplets; default no-duplicates: no batch
              holds a sentence twice, which would be its own in-batch negative)
              Several datasets: --data repeated, each step a batch of one of them with its own
              objective (--objective, --format, --column, --query-prompt, --document-prompt: once for
              all, or once per --data, in order; '' for none);
              --dataset-sampler proportional|round-robin (default proportional: every batch of each
              once per epoch, in a random order; round-robin: in turn, as often as the smallest allows)
              --query-prompt STR --document-prompt STR (pairs/triplets: before each anchor; before each
              positive and negative; saved as the model's query and document prompts: the first
              dataset's that has them)
  Objective   --objective simcse|off-dropout|dcl|simcse++|cosent|angle|distill (text: simcse++; pairs/triplets:
              simcse; cosent, angle: scored pairs sentence1,sentence2,score, ranked by their scores as
              CoSENTLoss and AnglELoss; distill --teacher DIR: the vectors of sentences, or of both
              sentences of parallel pairs, taught the teacher's vectors of the first, as MSELoss; a
              narrower model learns them projected onto their principal components over the data)
              --symmetric (pairs/triplets: also each positive against the anchors, the mean of both)
              --temperature 0.05  --pos-scale 1  --dcl-weight 0.1  --dcl-temperature 5  --dropout P
              --matryoshka-dims 768,512,256,128,64 [--matryoshka-weights 1,1,1,1,1]: the loss over
              each size's leading dimensions, summed (vectors cut with --truncate-dim stay good)
  Memory      --micro-batch auto|M|0: encode the 3N rows M at a time (exact gradients); auto (default):
              split only when the activations exceed min(4 GiB, RAM/4), on CUDA 3/4 of free GPU memory
  Recipe      --batch-size 64 --max-len 32 --lr 3e-5 --epochs 1 [--steps N] --warmup 0 (or --warmup-ratio
              0.1: a fraction of the steps) --weight-decay 0
              --lr-schedule linear|cosine|constant (after the warm-up)  --grad-clip 1 --seed 42
              --device auto|cpu|cuda
              --precision auto|fp32|bf16 (auto: bf16 tensor-core products on CUDA, fp32 on the CPU)
  Pooling     --pooling cls|mean|max|mean_sqrt_len (cls: CLS + MLP in training, CLS at evaluation, as
              SimCSE; sentence-transformers' modes); default: the --model's sentence-transformers pooling
              (its Normalize and prompts are kept, its Dense modules trained in place of the MLP head), else
              cls
  Evaluation  --eval-file FILE (repeatable; STS-B, SICK or an STS12-16 folder)  --eval-every 125 (0: off)
              --eval-retrieval DIR (repeatable; a BEIR folder, its dev qrels if any): nDCG@10,
              MRR@10, R@100
              --eval-classification, --eval-clustering, --eval-pair-classification, --eval-reranking,
              --eval-summarization PATH (repeatable; a file, or a folder's validation, dev or else
              test split): MTEB's main scores (accuracy, V-measure, AP, MAP, cosine Spearman), as
              simcsepp eval computes them
              --eval-translation PATH (repeatable; parallel pairs: english,non_english, anchor,positive or
              sentence1,sentence2; a file, a folder's split, or a folder per language pair): matching
              accuracy both ways and MTEB's bitext mining F1
              --eval-mse PATH (repeatable; --objective distill; parallel pairs, or one sentence per line):
              the MSE between the teacher's vectors of the first column and the model's of the second,
              as sentence-transformers' MSEEvaluator (shown as its negative_mse: -100 x MSE)
              --eval-experiments 10: classification's draws of 32 training rows per label at each
              evaluation (MTEB's 10; fewer where steps are fast)
              --select-by sts|retrieval|classification|clustering|pair-classification|reranking|
              summarization|translation|mse|mean|mean-type: the kind whose first set selects the best model,
              or mean: the mean of every set's main score (MTEB's Mean (Task)), or mean-type: of each
              kind's mean (Mean (TaskType)) (default: the first kind given, in that order)
              --early-stopping N: end the run after N evaluations in a row without a new best (0: off)
  Output      --out DIR (./simcsepp-out)  --save-every 250  --resume DIR | --overwrite (start over in DIR)
              --tensorboard: also the log as a TensorBoard event file (tensorboard --logdir DIR/run/tensorboard)
              --push-to-hub ORG/NAME[@BRANCH]: once the run ends (not when interrupted), the model pushed to the
              Hub as simcsepp push does, to BRANCH if given (made from main where it does not exist); a token
              with write access is checked before training starts
              --resume DIR alone continues the run with its options (DIR/run/training_args.json); options
              given again must match, except those that may change (--save-every, --eval-file, ...)
  Ranks       mpirun -np R simcsepp train ...: data-parallel over R processes (MPI; NCCL for CUDA), found
              from the launcher's environment; --distributed requires MPI even without those variables.
              --batch-size is the global batch; rank 0 writes the output
`

/** A flag given once as its value, repeated as the list of its values (one per --data). */
function oneOrEach<T>(values: T[] | undefined): T | T[] | undefined {
  return values === undefined ? undefined : values.length === 1 ? values[0] : values
}

export async function trainCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(trainUsage, {
    args: argv,
    options: {
      model: { type: 'string' },
      config: { type: 'string' },
      tokenizer: { type: 'string' },
      data: { type: 'string', multiple: true },
      format: { type: 'string', multiple: true },
      column: { type: 'string', multiple: true },
      'dataset-sampler': { type: 'string' },
      'batch-sampler': { type: 'string' },
      'negatives-per-example': { type: 'string' },
      symmetric: { type: 'boolean' },
      'query-prompt': { type: 'string', multiple: true },
      'document-prompt': { type: 'string', multiple: true },
      objective: { type: 'string', multiple: true },
      teacher: { type: 'string' },
      'keep-layers': { type: 'string' },
      temperature: { type: 'string' },
      'pos-scale': { type: 'string' },
      'dcl-weight': { type: 'string' },
      'dcl-temperature': { type: 'string' },
      dropout: { type: 'string' },
      'matryoshka-dims': { type: 'string' },
      'matryoshka-weights': { type: 'string' },
      'batch-size': { type: 'string' },
      'micro-batch': { type: 'string' },
      'max-len': { type: 'string' },
      lr: { type: 'string' },
      epochs: { type: 'string' },
      steps: { type: 'string' },
      warmup: { type: 'string' },
      'warmup-ratio': { type: 'string' },
      'lr-schedule': { type: 'string' },
      'weight-decay': { type: 'string' },
      'grad-clip': { type: 'string' },
      seed: { type: 'string' },
      device: { type: 'string' },
      precision: { type: 'string' },
      'eval-file': { type: 'string', multiple: true },
      'eval-retrieval': { type: 'string', multiple: true },
      'eval-classification': { type: 'string', multiple: true },
      'eval-clustering': { type: 'string', multiple: true },
      'eval-pair-classification': { type: 'string', multiple: true },
      'eval-reranking': { type: 'string', multiple: true },
      'eval-summarization': { type: 'string', multiple: true },
      'eval-translation': { type: 'string', multiple: true },
      'eval-mse': { type: 'string', multiple: true },
      'select-by': { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-experiments': { type: 'string' },
      'early-stopping': { type: 'string' },
      out: { type: 'string' },
      'save-every': { type: 'string' },
      resume: { type: 'string' },
      overwrite: { type: 'boolean' },
      tensorboard: { type: 'boolean' },
      pooling: { type: 'string' },
      distributed: { type: 'boolean' },
      'push-to-hub': { type: 'string' },
    },
  })
  const pushTo = values['push-to-hub']
  // ORG/NAME@BRANCH, as models are loaded by id (SentenceEncoder.load('org/name@revision')); split at the first '@'
  const [pushRepo = '', pushBranch] = pushTo?.split(/@(.*)/s, 2) ?? []
  if (pushTo !== undefined) {
    // (checked now, not after hours of training)
    if (!isPushableRepoId(pushRepo))
      throw new UsageError(`--push-to-hub ${pushTo}: not 'namespace/name' (your user or organisation, then the model's name)`)
    if (pushBranch !== undefined && !isBranchName(pushBranch))
      throw new UsageError(`--push-to-hub ${pushTo}: ${JSON.stringify(pushBranch)} is not a branch name`)
    if (!hubToken()) throw new UsageError('--push-to-hub needs a token with write access: set HF_TOKEN (or run `huggingface-cli login`)')
  }
  if (values.data === undefined && values.resume === undefined) {
    const extra = Object.keys(values).filter((k) => !['out', 'steps', 'seed', 'config', 'device'].includes(k))
    if (extra.length) throw new UsageError(`--data FILE is required with --${extra[0]} (without --data, train runs the demo)`)
    await demoCommand({
      out: values.out,
      steps: num('steps', values.steps, R.steps),
      seed: num('seed', values.seed, R.seed),
      config: oneOf('config', values.config, ['tiny', 'mini', 'small', 'base'] as const),
      device: oneOf('device', values.device, DEVICE_REQUESTS),
    })
    return
  }
  const options: TrainOptions = {
    model: await resolveModelFlag(values.model),
    config: oneOf('config', values.config, ['tiny', 'mini', 'small', 'base'] as const),
    tokenizer: values.tokenizer,
    data: oneOrEach(await resolveDataFlags(values.data))!,
    format: oneOrEach(values.format?.map((f) => oneOf('format', f, ['auto', ...DATA_FORMATS] as const)!)),
    column: oneOrEach(values.column),
    datasetSampler: oneOf('dataset-sampler', values['dataset-sampler'], DATASET_SAMPLERS),
    batchSampler: oneOf('batch-sampler', values['batch-sampler'], BATCH_SAMPLERS),
    negativesPerExample: num('negatives-per-example', values['negatives-per-example'], R.negativesPerExample),
    symmetric: values.symmetric,
    queryPrompt: oneOrEach(values['query-prompt']),
    documentPrompt: oneOrEach(values['document-prompt']),
    objective: oneOrEach(values.objective?.map((v) => oneOf('objective', v, OBJECTIVES)!)),
    teacher: await resolveModelFlag(values.teacher),
    keepLayers: numList('keep-layers', values['keep-layers'], { int: true, min: 0 }),
    temperature: num('temperature', values.temperature, R.temperature),
    posScale: num('pos-scale', values['pos-scale'], R.posScale),
    dclWeight: num('dcl-weight', values['dcl-weight'], R.dclWeight),
    dclTemperature: num('dcl-temperature', values['dcl-temperature'], R.dclTemperature),
    dropout: num('dropout', values.dropout, R.dropout),
    matryoshkaDims: numList('matryoshka-dims', values['matryoshka-dims'], { int: true, min: 1 }),
    matryoshkaWeights: numList('matryoshka-weights', values['matryoshka-weights'], { min: 0, max: MATRYOSHKA_WEIGHT_MAX }),
    batchSize: num('batch-size', values['batch-size'], R.batchSize),
    microBatch: values['micro-batch'] === 'auto' ? 'auto' : num('micro-batch', values['micro-batch'], R.microBatch),
    maxLen: num('max-len', values['max-len'], R.maxLen),
    lr: num('lr', values.lr, R.lr),
    epochs: num('epochs', values.epochs, R.epochs),
    steps: num('steps', values.steps, R.steps),
    warmup: num('warmup', values.warmup, R.warmup),
    warmupRatio: num('warmup-ratio', values['warmup-ratio'], R.warmupRatio),
    lrSchedule: oneOf('lr-schedule', values['lr-schedule'], LR_SCHEDULES),
    weightDecay: num('weight-decay', values['weight-decay'], R.weightDecay),
    gradClip: num('grad-clip', values['grad-clip'], R.gradClip),
    seed: num('seed', values.seed, R.seed),
    device: oneOf('device', values.device, DEVICE_REQUESTS),
    precision: oneOf('precision', values.precision, PRECISION_REQUESTS),
    evalFiles: await resolveDataFlags(values['eval-file']),
    evalRetrieval: await resolveDataFlags(values['eval-retrieval']),
    evalClassification: await resolveDataFlags(values['eval-classification']),
    evalClustering: await resolveDataFlags(values['eval-clustering']),
    evalPairClassification: await resolveDataFlags(values['eval-pair-classification']),
    evalReranking: await resolveDataFlags(values['eval-reranking']),
    evalSummarization: await resolveDataFlags(values['eval-summarization']),
    evalTranslation: await resolveDataFlags(values['eval-translation']),
    evalMse: await resolveDataFlags(values['eval-mse']),
    selectBy: oneOf('select-by', values['select-by'], SELECT_BY),
    evalEvery: num('eval-every', values['eval-every'], R.evalEvery),
    evalExperiments: num('eval-experiments', values['eval-experiments'], R.evalExperiments),
    earlyStopping: num('early-stopping', values['early-stopping'], R.earlyStopping),
    out: values.out ?? 'simcsepp-out',
    saveEvery: num('save-every', values['save-every'], R.saveEvery),
    resume: values.resume,
    overwrite: values.overwrite,
    tensorboard: values.tensorboard,
    pooling: oneOf('pooling', values.pooling, POOLINGS),
    distributed: values.distributed ? true : 'auto',
  }
  // --resume DIR: the run's own options (training_args.json), those given again on top.
  const run = values.resume !== undefined ? await resumeOptions(values.resume, { dataGiven: values.data !== undefined }) : null
  const given = Object.entries({ ...options, out: values.out }).filter(([, v]) => v !== undefined)
  const merged: TrainOptions = run ? { ...run, ...Object.fromEntries(given) } : options
  if (!merged.model && !merged.config) merged.config = 'mini'
  const display = new TrainingDisplay()
  const result = await display.run((hooks) => train(merged, hooks))
  if (!result.rank) display.summary(result) // in a data-parallel run, rank 0 speaks for all
  if (pushTo === undefined || result.rank) return
  if (result.interrupted) {
    process.stderr.write(`not pushed to ${pushTo}: the run was interrupted (--resume ${result.out} continues it)\n`)
    return
  }
  const bars = fileProgressBars()
  const retry = `simcsepp push --model ${result.out} --repo ${pushRepo}${pushBranch !== undefined ? ` --revision ${pushBranch}` : ''}`
  const pushed = await pushToHub(result.out, pushRepo, { revision: pushBranch, onProgress: bars.onProgress }).catch((e: Error) => {
    throw new Error(`${e.message}\n(the model is saved in ${result.out}: ${retry} retries)`)
  })
  bars.finish()
  process.stderr.write(`pushed to ${pushTo}: commit ${pushed.commit}\n  ${pushed.url}\n`)
}
