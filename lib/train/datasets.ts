// Several datasets in one run (sentence-transformers' multi-dataset training): each step trains on a batch
// of one dataset with that dataset's objective (NLI triplets with supervised SimCSE, STS-B's scored pairs
// with CoSENT, a corpus of sentences with SimCSE++), over the one model and optimizer. Which dataset a step
// draws from follows a seeded schedule that depends only on the step number, so a resumed run (and every
// rank of a data-parallel one) takes the same dataset at the same step; each dataset's own batch stream
// keeps its position in the checkpoint.
//
// Schedules (sentence-transformers' MultiDatasetBatchSamplers):
//   proportional: an epoch holds every batch of every dataset, in an order shuffled per epoch;
//   round-robin:  the datasets in turn, K times each per epoch, K the batches of the smallest; the larger
//                 ones continue where they stopped in the next epoch (sentence-transformers starts them over).
import { permutation } from '../data/sentences.js'
import type { DataFormat } from '../data/pairs.js'
import type { Objective } from './objective.js'

export const DATASET_SAMPLERS = ['proportional', 'round-robin'] as const
export type DatasetSampler = (typeof DATASET_SAMPLERS)[number]

/** One dataset of a run: its file and how it is read and trained on. */
export interface DatasetSpec {
  data: string
  format: DataFormat | 'auto'
  /** Parquet/JSON Lines: the column (field) of sentences, when it holds sentences. */
  column?: string
  objective: Objective
  /** Supervised data: before each anchor (its training prompt), and before each positive and negative. */
  queryPrompt?: string
  documentPrompt?: string
}

/** The per-dataset options' values: one for every dataset, or one each (an array as long as `data`). */
export function perDataset<T>(name: string, value: T | T[] | undefined, count: number): (T | undefined)[] {
  if (!Array.isArray(value)) return Array.from({ length: count }, () => value)
  if (value.length !== count)
    throw new TypeError(`train: ${name} must be one value for every dataset or one per dataset (${count}; got ${value.length})`)
  return value
}

// The schedule's shuffles draw from their own stream of the seed (the datasets' shuffles use streams 0, 1, ...: epochs).
const SCHEDULE_STREAM = 0x40000000

/** Which dataset each step draws from. */
export class DatasetSchedule {
  /** Steps per epoch of the schedule. */
  readonly stepsPerEpoch: number
  private cached: { epoch: number; order: Uint8Array | Uint16Array } | null = null

  /**
   * @param batches each dataset's batches per epoch (BatchStream.batchesPerEpoch), in order
   * @param sampler proportional or round-robin
   */
  constructor(
    private readonly batches: number[],
    private readonly sampler: DatasetSampler,
    private readonly seed: number,
  ) {
    if (batches.length === 0 || batches.some((b) => !Number.isSafeInteger(b) || b < 1))
      throw new RangeError(`every dataset needs at least one batch per epoch (got ${JSON.stringify(batches)})`)
    this.stepsPerEpoch = sampler === 'round-robin' ? batches.length * Math.min(...batches) : batches.reduce((a, b) => a + b, 0)
  }

  /** The dataset of step `step` (0-based) and the schedule's epoch it falls in. */
  at(step: number): { dataset: number; epoch: number } {
    const epoch = Math.floor(step / this.stepsPerEpoch)
    const index = step - epoch * this.stepsPerEpoch
    // One dataset (every run of one file): no order to draw.
    if (this.batches.length === 1) return { dataset: 0, epoch }
    if (this.sampler === 'round-robin') return { dataset: index % this.batches.length, epoch }
    return { dataset: this.order(epoch)[index], epoch }
  }

  /** Proportional: an epoch's datasets, each as often as it has batches, in a shuffled order. */
  private order(epoch: number): Uint8Array | Uint16Array {
    if (this.cached?.epoch === epoch) return this.cached.order
    const owner = this.batches.length < 256 ? new Uint8Array(this.stepsPerEpoch) : new Uint16Array(this.stepsPerEpoch)
    let k = 0
    this.batches.forEach((b, d) => owner.fill(d, k, (k += b)))
    const p = permutation(this.stepsPerEpoch, this.seed, SCHEDULE_STREAM + epoch)
    const order = owner.map((_, i) => owner[p[i]])
    this.cached = { epoch, order }
    return order
  }
}
