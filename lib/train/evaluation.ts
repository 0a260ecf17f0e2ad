// Evaluation during training, with model selection: every evaluation scores each STS file and each retrieval set
// (a BEIR folder: nDCG@10, MRR@10, Recall@100 of exact cosine search), and when the selection score (the first STS
// file's Spearman, or without STS files the first retrieval set's nDCG@10) beats the best so far, the model is
// saved into the output directory (so with evaluation on, the output holds the best model rather than the last one).
import type { BertModel } from '../model/bert.js'
import type { Tokenizer } from '../tokenizer.js'
import { evaluateSts, readStsFile, type EmbedFn, type StsPair } from '../eval/sts.js'
import { readBeirDataset, type RetrievalDataset } from '../eval/beir.js'
import { evaluateRetrieval } from '../eval/retrieval.js'
import { memoEmbed } from '../embed/memo-embed.js'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Best, EvalInfo, RetrievalEval } from './events.js'

export interface EvalSet {
  file: string
  pairs: StsPair[]
}

export async function readEvalSets(files: string[]): Promise<EvalSet[]> {
  const sets: EvalSet[] = []
  for (const file of files) sets.push({ file, pairs: await readStsFile(file) })
  return sets
}

/**
 * The retrieval sets of evalRetrieval: each BEIR folder with the qrels of its dev split when it has one (model
 * selection on a test split would tune to the test), else of its test split.
 */
export async function readRetrievalSets(dirs: string[]): Promise<RetrievalDataset[]> {
  const sets: RetrievalDataset[] = []
  for (const dir of dirs) sets.push(await readBeirDataset(dir, existsSync(join(dir, 'qrels', 'dev.tsv')) ? 'dev' : 'test'))
  return sets
}

/** A best evaluation's selection score, and what it measures. */
export function bestScore(best: NonNullable<Best>): { metric: 'spearman' | 'ndcgAt10'; score: number } {
  return 'ndcgAt10' in best ? { metric: 'ndcgAt10', score: best.ndcgAt10 } : { metric: 'spearman', score: best.spearman }
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
      const h = z.shape[1] // the model's embeddingDim: its Dense modules' output where it has them
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

export class Evaluator {
  constructor(
    private readonly sets: EvalSet[],
    private readonly embed: EmbedFn,
    /** Saves the current model as the best one. */
    private readonly saveBest: () => Promise<void>,
    /** The best evaluation so far (a resumed run's, or none; one of another selection metric is set aside). */
    public best: Best,
    /** Matryoshka training's sizes below the hidden size: the first file is also scored on the vectors cut to each. */
    private readonly cutDims: number[] = [],
    /** Retrieval sets (readRetrievalSets). */
    private readonly retrievalSets: RetrievalDataset[] = [],
    /**
     * What queries and documents of the retrieval sets are prefixed with (the model's query and document prompts),
     * and STS sentences (its default prompt), as the saved model's encodeQuery, encodeDocument and encode do.
     */
    private readonly prefixes: { queryPrefix?: string; documentPrefix?: string; sentencePrefix?: string } = {},
  ) {
    if (best && bestScore(best).metric !== this.metric) this.best = null
  }

  /** What selects the model: the first STS file's Spearman, else the first retrieval set's nDCG@10. */
  get metric(): 'spearman' | 'ndcgAt10' {
    return this.sets.length ? 'spearman' : 'ndcgAt10'
  }

  /** Scores every set at `step`, saving the model when it is the best so far (by the selection score, whole vectors). */
  async evaluate(step: number): Promise<EvalInfo> {
    const results: EvalInfo['results'] = []
    const prefix = this.prefixes.sentencePrefix ?? ''
    const sentences: EmbedFn = prefix ? (s) => this.embed(s.map((x) => prefix + x)) : this.embed
    const embed = memoEmbed(sentences)
    for (const set of this.sets) {
      const r = await evaluateSts(set === this.sets[0] ? embed.full : sentences, set.pairs)
      results.push({ file: set.file, pairs: r.pairs, spearman: r.spearman, pearson: r.pearson })
    }
    const dimSpearman: Record<string, number> = {}
    if (this.sets.length) for (const d of this.cutDims) dimSpearman[d] = (await evaluateSts(embed.cut(d), this.sets[0].pairs)).spearman
    const retrieval: RetrievalEval[] = []
    for (const data of this.retrievalSets) {
      const r = await evaluateRetrieval(this.embed, data, {
        queryPrefix: this.prefixes.queryPrefix,
        documentPrefix: this.prefixes.documentPrefix,
      })
      retrieval.push({
        dataset: r.dataset,
        split: r.split,
        queries: r.queries,
        documents: r.documents,
        ndcgAt10: r.ndcgAt10,
        mrrAt10: r.scores.mrr[10],
        recallAt100: r.scores.recall[100],
      })
    }
    const score = this.sets.length ? results[0].spearman : retrieval[0].ndcgAt10
    const isBest = !this.best || betterScore(score, bestScore(this.best).score)
    if (isBest) {
      this.best = this.metric === 'spearman' ? { step, spearman: score } : { step, ndcgAt10: score }
      await this.saveBest()
    }
    return {
      type: 'eval',
      step,
      results,
      ...(results.length ? { average: results.reduce((a, r) => a + r.spearman, 0) / results.length, spearman: results[0].spearman } : {}),
      ...(results.length && this.cutDims.length ? { dimSpearman } : {}),
      ...(retrieval.length ? { retrieval } : {}),
      best: isBest,
    }
  }
}
