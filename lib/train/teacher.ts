// Distillation's teacher (objective distill; sentence-transformers' MSELoss, Reimers & Gurevych 2020): a model whose
// vectors of each batch's sentences the student learns to reproduce. It runs as SentenceEncoder does (its own
// pooling, Normalize module and maximum length), on the training device, once per step on that step's sentences
// (deterministic, so a resumed run gets the same targets). A teacher wider than the student is projected onto the
// student's width by its first principal components over a sample of the training sentences (sentence-transformers'
// model_distillation recipe: PCA of the teacher's vectors of 20,000 sentences, a Dense layer without bias), computed
// the same way on every run and rank from the same sentences, so resumes and ranks get the same targets.
// A run of more than one epoch encodes every distillation sentence once before training instead (as
// sentence-transformers computes its MSE datasets' labels up front), in file order and fixed batches, so every epoch,
// resume and rank reads the same targets, when they fit in TARGETS_BUDGET bytes; else it encodes each step's.
import { SentenceEncoder } from '../embed/sentence-encoder.js'
import { linearForward } from '../ops.js'
import { Tensor, type Device } from '../tensor.js'
import { principalComponents } from './pca.js'

/** Sentences whose teacher vectors fit the projection (sentence-transformers' example uses 20,000). */
export const PCA_SAMPLE = 20000

/** The most bytes of targets computed up front (a larger set is encoded step by step). */
export const TARGETS_BUDGET = 2 ** 31

/** Sentences encoded at a time when the targets are computed up front. */
const UPFRONT_CHUNK = 4096

/** What the teacher needs of the training data. */
export interface TeacherData {
  /** Up to `count` training sentences spread over the data (for the projection of a wider teacher). */
  sample(count: number): Promise<string[]>
  /** How many sentences `all` reads (before it reads them). */
  count: number
  /** Every distillation sentence, when the targets are to be computed once (a run of several epochs), else null. */
  all: (() => Promise<string[]>) | null
}

/** The teacher's vectors of sentences, [N, D] row-major. */
export type TeacherVectors = (sentences: string[]) => Promise<Float32Array>

export interface Teacher {
  vectors: TeacherVectors
  /** How a wider teacher's vectors are projected onto the student's width (null: they are not). */
  projection: { from: number; to: number; sentences: number } | null
  close(): Promise<void>
}

export async function loadTeacher(
  dir: string,
  device: Device,
  precision: 'auto' | 'fp32' | 'bf16',
  width: number,
  say: (s: string) => void,
  data: TeacherData,
): Promise<Teacher> {
  let encoder: SentenceEncoder
  try {
    encoder = await SentenceEncoder.load(dir, { device, precision })
  } catch (e) {
    throw new Error(`--teacher ${dir}: ${(e as Error).message}`)
  }
  const D = encoder.dimension
  const encode = async (sentences: string[]) => {
    const rows = (await encoder.encode(sentences)) as Float32Array[]
    const out = new Float32Array(rows.length * D)
    rows.forEach((v, i) => out.set(v, i * D))
    return out
  }
  let projection: Tensor | null = null
  let projected: Teacher['projection'] = null
  try {
    if (D < width)
      throw new Error(
        `--teacher ${dir}: its vectors have ${D} dimensions, fewer than the model's ${width}: a student must be at most the teacher's width`,
      )
    const about = `teacher: ${dir} (${D} dimensions${encoder.normalize ? ', normalised' : ''}, on ${encoder.device})`
    if (D > width) {
      const sentences = await data.sample(PCA_SAMPLE)
      if (sentences.length < width)
        throw new Error(
          `--teacher ${dir}: projecting its ${D} dimensions onto the model's ${width} takes at least ${width} training sentences ` +
            `(their principal components), the data has ${sentences.length}`,
        )
      projection = Tensor.from(principalComponents(await encode(sentences), sentences.length, D, width), [width, D])
      projected = { from: D, to: width, sentences: sentences.length }
      say(
        `${about}, projected onto its first ${width} principal components over ${sentences.length} training sentences: ` +
          "each batch's distillation targets",
      )
    } else say(`${about}: each batch's distillation targets`)
  } catch (e) {
    await encoder.close()
    throw e
  }
  const project = (v: Float32Array): Float32Array => {
    if (!projection) return v
    const n = v.length / D
    const x = Tensor.from(v, [n, D])
    const out = Tensor.zeros([n, width])
    try {
      linearForward(out, x, projection, null) // out = x · componentsᵀ
      return out.toFloat32Array()
    } finally {
      x.dispose()
      out.dispose()
    }
  }
  let upfront: { index: Map<string, number>; targets: Float32Array } | null = null
  if (data.all) {
    const bytes = data.count * width * 4
    if (bytes > TARGETS_BUDGET)
      say(
        `teacher: the targets of ${data.count} sentences (${(bytes / 2 ** 20).toFixed(0)} MiB) are more than ` +
          `${TARGETS_BUDGET / 2 ** 20} MiB: encoded step by step, every epoch`,
      )
    else {
      try {
        upfront = await encodeAll(await data.all(), width, async (s) => project(await encode(s)))
      } catch (e) {
        projection?.dispose()
        await encoder.close()
        throw e
      }
      say(
        `teacher: the targets of all ${upfront.index.size} distinct sentences computed once ` +
          `(${(upfront.targets.byteLength / 2 ** 20).toFixed(1)} MiB), read every epoch`,
      )
    }
  }
  return {
    projection: projected,
    vectors: async (sentences) => {
      if (!upfront) return project(await encode(sentences))
      const { index, targets } = upfront
      const out = new Float32Array(sentences.length * width)
      // Every sentence of the data has its row; one that has not (none should) is encoded here.
      const missing = [...new Set(sentences.filter((x) => !index.has(x)))]
      const extra = missing.length ? project(await encode(missing)) : new Float32Array(0)
      const row = (x: string): Float32Array => {
        const r = index.get(x)
        if (r !== undefined) return targets.subarray(r * width, (r + 1) * width)
        const m = missing.indexOf(x)
        return extra.subarray(m * width, (m + 1) * width)
      }
      sentences.forEach((x, i) => out.set(row(x), i * width))
      return out
    },
    close: async () => {
      projection?.dispose()
      await encoder.close()
    },
  }
}

/** The targets of every distinct sentence, in their first order, encoded UPFRONT_CHUNK at a time: a row per sentence. */
async function encodeAll(
  sentences: string[],
  width: number,
  targetsOf: (s: string[]) => Promise<Float32Array>,
): Promise<{ index: Map<string, number>; targets: Float32Array }> {
  const index = new Map<string, number>()
  for (const x of sentences) if (!index.has(x)) index.set(x, index.size)
  const distinct = [...index.keys()]
  const targets = new Float32Array(distinct.length * width)
  for (let s = 0; s < distinct.length; s += UPFRONT_CHUNK) targets.set(await targetsOf(distinct.slice(s, s + UPFRONT_CHUNK)), s * width)
  return { index, targets }
}
