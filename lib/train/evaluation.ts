// STS evaluation during training, with model selection: every evaluation scores each STS file, and
// when the first file's Spearman beats the best so far the model is saved into the output directory
// (so with evaluation on, the output holds the best model rather than the last one).
import type { BertModel } from '../model/bert.js'
import type { Tokenizer } from '../tokenizer.js'
import { evaluateSts, readStsFile, type EmbedFn, type StsPair } from '../eval/sts.js'
import type { Best, EvalInfo } from './events.js'

export interface EvalSet {
  file: string
  pairs: StsPair[]
}

export async function readEvalSets(files: string[]): Promise<EvalSet[]> {
  const sets: EvalSet[] = []
  for (const file of files) sets.push({ file, pairs: await readStsFile(file) })
  return sets
}

/** Sentence vectors of the model as it is now (eval mode, no dropout), 128 sentences per pass. */
export function modelEmbedder(model: BertModel, tokenizer: Tokenizer, maxLen: number, pooling: 'cls' | 'mean'): EmbedFn {
  return async (sentences: string[]) => {
    const vecs: Float32Array[] = []
    for (let i = 0; i < sentences.length; i += 128) {
      const enc = await tokenizer.encodeBatch(sentences.slice(i, i + 128), { maxLength: maxLen })
      const z = model.embed(enc, pooling)
      const flat = z.toFloat32Array()
      z.dispose()
      const h = model.config.hiddenSize
      for (let r = 0; r < enc.shape[0]; r++) vecs.push(flat.slice(r * h, (r + 1) * h))
    }
    return vecs
  }
}

/**
 * Whether Spearman `a` beats `b`. NaN (constant vectors: no ranking) loses to any number, so a first
 * NaN evaluation does not block every later, real improvement (`x > NaN` is false).
 */
export function betterScore(a: number, b: number): boolean {
  if (Number.isNaN(a)) return false
  return Number.isNaN(b) || a > b
}

/**
 * `embed` remembering each sentence's vector (one evaluation's: the model changes between them), and the same
 * vectors cut to their first `dim` values, so that scoring a file at several Matryoshka sizes encodes it once.
 */
function memoised(embed: EmbedFn): { full: EmbedFn; cut: (dim: number) => EmbedFn } {
  const seen = new Map<string, Float32Array>()
  const full: EmbedFn = async (sentences) => {
    const missing = [...new Set(sentences.filter((x) => !seen.has(x)))]
    if (missing.length) (await embed(missing)).forEach((v, i) => seen.set(missing[i], v))
    return sentences.map((x) => seen.get(x)!)
  }
  return { full, cut: (dim) => async (sentences) => (await full(sentences)).map((v) => v.subarray(0, dim)) }
}

export class Evaluator {
  constructor(
    private readonly sets: EvalSet[],
    private readonly embed: EmbedFn,
    /** Saves the current model as the best one. */
    private readonly saveBest: () => Promise<void>,
    /** The best evaluation so far (a resumed run's, or none). */
    public best: Best,
    /** Matryoshka training's sizes below the hidden size: the first file is also scored on the vectors cut to each. */
    private readonly cutDims: number[] = [],
  ) {}

  /** Scores every set at `step`, saving the model when it is the best so far (by the first file, whole vectors). */
  async evaluate(step: number): Promise<EvalInfo> {
    const results: EvalInfo['results'] = []
    const embed = memoised(this.embed)
    for (const set of this.sets) {
      const r = await evaluateSts(set === this.sets[0] ? embed.full : this.embed, set.pairs)
      results.push({ file: set.file, pairs: r.pairs, spearman: r.spearman, pearson: r.pearson })
    }
    const dimSpearman: Record<string, number> = {}
    for (const d of this.cutDims) dimSpearman[d] = (await evaluateSts(embed.cut(d), this.sets[0].pairs)).spearman
    const average = results.reduce((a, r) => a + r.spearman, 0) / results.length
    const spearman = results[0].spearman
    const isBest = !this.best || betterScore(spearman, this.best.spearman)
    if (isBest) {
      this.best = { step, spearman }
      await this.saveBest()
    }
    return { type: 'eval', step, results, average, spearman, ...(this.cutDims.length ? { dimSpearman } : {}), best: isBest }
  }
}
