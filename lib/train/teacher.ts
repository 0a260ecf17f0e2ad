// Distillation's teacher (objective distill; sentence-transformers' MSELoss, Reimers & Gurevych 2020): a model whose
// vectors of each batch's sentences the student learns to reproduce. It runs as SentenceEncoder does (its own
// pooling, Normalize module and maximum length), on the training device, once per step on that step's sentences
// (deterministic, so a resumed run gets the same targets), and its width must be the student's.
import { SentenceEncoder } from '../embed/sentence-encoder.js'
import type { Device } from '../tensor.js'

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
): Promise<Teacher> {
  let encoder: SentenceEncoder
  try {
    encoder = await SentenceEncoder.load(dir, { device, precision })
  } catch (e) {
    throw new Error(`--teacher ${dir}: ${(e as Error).message}`)
  }
  const D = encoder.dimension
  if (D !== width) {
    await encoder.close()
    throw new Error(
      `--teacher ${dir}: its vectors have ${D} dimensions, the model's ${width}: distillation needs a student of the teacher's width`,
    )
  }
  say(
    `teacher: ${dir} (${D} dimensions${encoder.normalize ? ', normalised' : ''}, on ${encoder.device}): each batch's distillation targets`,
  )
  return {
    vectors: async (sentences) => {
      const rows = (await encoder.encode(sentences)) as Float32Array[]
      const out = new Float32Array(rows.length * D)
      rows.forEach((v, i) => out.set(v, i * D))
      return out
    },
    close: () => encoder.close(),
  }
}
