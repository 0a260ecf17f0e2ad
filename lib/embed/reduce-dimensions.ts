// A model's vectors made shorter without training (sentence-transformers' dimensionality_reduction example): the
// first principal components of its vectors of some sentences become a bias-free Dense module with no activation,
// appended to a copy of the model, so that SentenceTransformer(out) and SentenceEncoder.load(out) give
// components · vector. The components are fitted to the vectors the model outputs (normalised where it ends in a
// Normalize module); the Dense module goes before that Normalize, whose output is then the unit vector of the
// projection: normalize(W·x) = normalize(W·x/|x|) for a bias-free W, so cosine similarities are those of
// sentence-transformers' recipe (which appends the Dense after the Normalize, leaving the projections unnormalised).
import { existsSync, readdirSync } from 'node:fs'
import { cp, mkdir, rm } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { writeSafetensors } from '../safetensors.js'
import { principalComponentsHeld } from '../train/pca.js'
import { denseModulePath, writeSentenceTransformersFiles } from '../train/sentence-transformers.js'
import { writeFileAtomic } from '../util/atomic-write.js'
import { readJsonFile } from '../util/json.js'
import { ACTIVATION_CLASS } from '../model/dense-head.js'
import { SentenceEncoder, type SentenceEncoderOptions } from './sentence-encoder.js'
import { readSentenceTransformersConfig } from './sentence-transformers-config.js'
import { hubIdOf } from '../hub/hub-model.js'

export interface ReduceOptions {
  /** The vectors' new length: the number of principal components kept. */
  dim: number
  /** The sentences the components are fitted to (at least `dim`; sentence-transformers' example takes 20,000). */
  sentences: string[]
  /** Replace a folder `out` that holds files (else refused). */
  overwrite?: boolean
  /** How the model is run to fit the components (default: the CPU, fp32). */
  encoder?: Pick<SentenceEncoderOptions, 'device' | 'precision' | 'batchSize'>
  /** Where the sentences came from, for the copy's card (e.g. the file's name). */
  source?: string
}

export interface ReduceResult {
  out: string
  /** The vectors' length before and after. */
  from: number
  to: number
  sentences: number
  /** The fraction of the sentences' vectors' variance the kept components hold. */
  explained: number
  /** The Dense module's folder in `out`, and whether a Normalize module follows it. */
  dense: string
  normalized: boolean
}

// What a copy of the model leaves out: its card (whose results are not the new model's: the copy gets its own),
// exports of the old graph, a training run's state, hidden files.
const NOT_COPIED = new Set(['README.md', 'onnx', 'openvino', 'run'])

/** Writes into `out` the model of `model` with its vectors reduced to `o.dim` values by their principal components. */
export async function reduceDimensions(model: string, out: string, o: ReduceOptions): Promise<ReduceResult> {
  const src = resolve(model)
  const dst = resolve(out)
  if (!Number.isSafeInteger(o.dim) || o.dim < 1) throw new RangeError(`reduce: dim must be a positive integer (got ${String(o.dim)})`)
  if (dst === src || dst.startsWith(src + '/')) throw new Error(`reduce: ${out} is inside the model's folder: give another`)
  if (existsSync(dst) && readdirSync(dst).length > 0 && !o.overwrite)
    throw new Error(`reduce: ${out} holds files: give another folder, or overwrite`)
  const st = await readSentenceTransformersConfig(src)
  if (st.truncateDim !== undefined)
    throw new Error(`reduce: ${model} cuts its vectors to ${st.truncateDim} values already (truncate_dim): reduce a model of whole vectors`)
  // Keys given as undefined (a CLI flag not passed) keep the defaults rather than SentenceEncoder's own (auto device).
  const given = Object.entries(o.encoder ?? {}).filter(([, v]) => v !== undefined)
  const enc = await SentenceEncoder.load(src, { device: 'cpu', precision: 'fp32', ...Object.fromEntries(given) })
  let held: ReturnType<typeof principalComponentsHeld>
  const D = enc.dimension
  try {
    if (o.dim >= D) throw new RangeError(`reduce: dim ${o.dim} is not below the model's ${D} dimensions`)
    if (o.sentences.length < o.dim)
      throw new RangeError(`reduce: ${o.dim} components take at least ${o.dim} sentences (got ${o.sentences.length})`)
    const rows = (await enc.encode(o.sentences)) as Float32Array[]
    const x = new Float32Array(rows.length * D)
    rows.forEach((r, i) => x.set(r, i * D))
    held = principalComponentsHeld(x, rows.length, D, o.dim)
  } finally {
    await enc.close()
  }

  if (existsSync(dst)) await rm(dst, { recursive: true, force: true })
  await mkdir(dst, { recursive: true })
  await cp(src, dst, {
    recursive: true,
    dereference: true, // (a Hub snapshot's files are links into the cache's blobs)
    filter: (from) => from === src || !(NOT_COPIED.has(basename(from)) || basename(from).startsWith('.')) || !sameDir(from, src),
  })
  // The Dense module: before a Normalize module, else last; in a model that had no sentence-transformers files, after
  // the Pooling those files now say (the pooling, normalisation and length SentenceEncoder used).
  let dense: string
  if (st.modulesFile) {
    const modules = (await readJsonFile(join(dst, 'modules.json'))) as { idx?: number; name?: string; path: string; type: string }[]
    const at = modules.findIndex((m) => m.type.endsWith('.Normalize'))
    const index = at < 0 ? modules.length : at
    dense = freeName(dst, `${index}_Dense`)
    modules.splice(index, 0, { idx: index, name: String(index), path: dense, type: 'sentence_transformers.models.Dense' })
    modules.forEach((m, i) => Object.assign(m, { idx: i, name: String(i) }))
    await writeFileAtomic(join(dst, 'modules.json'), JSON.stringify(modules, null, 2) + '\n')
  } else {
    await writeSentenceTransformersFiles(dst, D, enc.maxLength, enc.pooling, { normalize: enc.normalize }, 1)
    dense = denseModulePath(0)
  }
  await mkdir(join(dst, dense), { recursive: true })
  await writeSafetensors(join(dst, dense, 'model.safetensors'), { 'linear.weight': { shape: [o.dim, D], data: held.components } })
  await writeFileAtomic(
    join(dst, dense, 'config.json'),
    JSON.stringify({ in_features: D, out_features: o.dim, bias: false, activation_function: ACTIVATION_CLASS.identity }, null, 2) + '\n',
  )
  const r = { out: dst, from: D, to: o.dim, sentences: o.sentences.length, explained: held.explained, dense, normalized: enc.normalize }
  await writeFileAtomic(join(dst, 'README.md'), reducedCard(src, r, o.source))
  return r
}

/** The copy's model card: what it was made from and how, and how to load it. */
function reducedCard(src: string, r: ReduceResult, source = 'the given sentences'): string {
  const hub = hubIdOf(src)
  const name = hub ?? basename(src)
  return [
    '---',
    'library_name: sentence-transformers',
    'pipeline_tag: sentence-similarity',
    'tags:',
    '- sentence-transformers',
    '- sentence-similarity',
    '- feature-extraction',
    ...(hub ? [`base_model: ${hub}`] : []),
    '---',
    '',
    `# ${basename(r.out)}`,
    '',
    `\`${name}\` with its vectors reduced from ${r.from} to ${r.to} values, not trained further: its first ${r.to} principal ` +
      `components over ${r.sentences} sentences of ${source} (${(100 * r.explained).toFixed(1)}% of their variance) as a ` +
      `bias-free Dense module after its pooling${r.normalized ? ', before its Normalize module' : ''} (\`${r.dense}\`), as ` +
      "sentence-transformers' dimensionality_reduction example makes one. Made by `simcsepp reduce`.",
    '',
    '## Usage',
    '',
    '```python',
    'from sentence_transformers import SentenceTransformer',
    '',
    `model = SentenceTransformer("path/to/${basename(r.out)}")`,
    'embeddings = model.encode(["A man is playing a guitar.", "Someone plays an instrument."])',
    '```',
    '',
    '```js',
    "import { SentenceEncoder } from 'simcsepp'",
    '',
    `const encoder = await SentenceEncoder.load('path/to/${basename(r.out)}')`,
    '```',
    '',
  ].join('\n')
}

/** Whether `path` lies directly in `dir` (the copy's filter leaves out top-level entries only). */
const sameDir = (path: string, dir: string) => resolve(path, '..') === dir

/** `name`, or name_2, name_3, ...: the first that is no entry of `dir`. */
function freeName(dir: string, name: string): string {
  let candidate = name
  for (let k = 2; existsSync(join(dir, candidate)); k++) candidate = `${name}_${k}`
  return candidate
}
