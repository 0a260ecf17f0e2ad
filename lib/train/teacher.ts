// Distillation's teacher (objective distill; sentence-transformers' MSELoss, Reimers & Gurevych 2020): a model whose
// vectors of each batch's sentences the student learns to reproduce. It runs as SentenceEncoder does (its own
// pooling, Normalize module and maximum length), on the training device, once per step on that step's sentences
// (deterministic, so a resumed run gets the same targets). A teacher wider than the student is projected onto the
// student's width by its first principal components over a sample of the training sentences (sentence-transformers'
// model_distillation recipe: PCA of the teacher's vectors of 20,000 sentences, a Dense layer without bias), computed
// the same way on every run and rank from the same sentences, so resumes and ranks get the same targets.
import { SentenceEncoder } from '../embed/sentence-encoder.js'
import { linearForward } from '../ops.js'
import { Tensor, type Device } from '../tensor.js'
import { principalComponents } from './pca.js'

/** Sentences whose teacher vectors fit the projection (sentence-transformers' example uses 20,000). */
export const PCA_SAMPLE = 20000

/** The teacher's vectors of sentences, [N, D] row-major. */
export type TeacherVectors = (sentences: string[]) => Promise<Float32Array>

export interface Teacher {
  vectors: TeacherVectors
  close(): Promise<void>
}

export async function loadTeacher(
  dir: string,
  device: Device,
  precision: 'auto' | 'fp32' | 'bf16',
  width: number,
  say: (s: string) => void,
  /** Up to `count` training sentences spread over the data (for the projection of a wider teacher). */
  sample: (count: number) => Promise<string[]>,
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
  try {
    if (D < width)
      throw new Error(
        `--teacher ${dir}: its vectors have ${D} dimensions, fewer than the model's ${width}: a student must be at most the teacher's width`,
      )
    const about = `teacher: ${dir} (${D} dimensions${encoder.normalize ? ', normalised' : ''}, on ${encoder.device})`
    if (D > width) {
      const sentences = await sample(PCA_SAMPLE)
      if (sentences.length < width)
        throw new Error(
          `--teacher ${dir}: projecting its ${D} dimensions onto the model's ${width} takes at least ${width} training sentences ` +
            `(their principal components), the data has ${sentences.length}`,
        )
      projection = Tensor.from(principalComponents(await encode(sentences), sentences.length, D, width), [width, D])
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
  return {
    vectors: async (sentences) => project(await encode(sentences)),
    close: async () => {
      projection?.dispose()
      await encoder.close()
    },
  }
}
