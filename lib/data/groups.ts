// Grouped supervised data, the fine-tuning format of FlagEmbedding (BGE's trainer): JSONL objects with a query,
// a list of positives (pos) and a list of hard negatives (neg); other keys (prompt, pos_scores, neg_scores, type)
// are ignored. Each time an example is drawn (once an epoch) it becomes an n-tuple, as FlagEmbedding's dataset
// makes its train group: the query, one positive picked at random, and k negatives drawn without replacement
// from neg (from neg repeated until it holds k, when it holds fewer). The draws come from a generator seeded by
// (seed, epoch, example), so every run, every rank and every resume sees the same tuples. An n-tuple file (PairFile)
// is drawn the same way when fewer negatives than it holds are asked for (fromTuples): k of its negatives each epoch.
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { firstInvalidUtf8, firstLineOf } from './text-lines.js'
import { exampleKind, type DataFormat, type PairFile } from './pairs.js'
import { permutation, xoshiro128, type DataFingerprint } from './sentences.js'
import { jsonObjectOf } from './json-object.js'

interface Group {
  query: string
  pos: string[]
  neg: string[]
}

/** FlagEmbedding's train_group_size is 8: a positive and 7 negatives. */
export const DEFAULT_GROUP_NEGATIVES = 7

/** Whether the file's first object has FlagEmbedding's keys (query, and pos as a list): a grouped file. */
export async function isGroupedFile(path: string): Promise<boolean> {
  const first = await firstLineOf(path)
  if (!first) return false // the pairs reader names a missing or unreadable file
  try {
    const o = JSON.parse(first.line) as Record<string, unknown>
    return typeof o === 'object' && o !== null && 'query' in o && Array.isArray(o.pos)
  } catch {
    // A first line longer than the peek (a group of many long passages): its keys as far as they show; else not
    // JSON, and the pairs reader says what is wrong.
    const head = first.line
    return first.cut && /^\s*\{/.test(head) && /"query"\s*:/.test(head) && /"pos"\s*:\s*\[/.test(head)
  }
}

/** A grouped training file: each example a query with its positives and hard negatives, drawn as (2 + k)-tuples. */
export class GroupFile {
  private constructor(
    readonly path: string,
    private readonly groups: Group[],
    /** Hard negatives per drawn tuple. */
    readonly negatives: number,
    private readonly seed: number,
    readonly fingerprint: DataFingerprint,
    readonly format: DataFormat = 'jsonl',
    /** What an n-tuple file held (fromTuples), for describe(). */
    private readonly tuples?: string,
  ) {}

  /**
   * An n-tuple file's examples drawn with `negatives` of their hard negatives each epoch (at most as many as the
   * file has: none is repeated).
   */
  static fromTuples(file: PairFile, negatives: number, seed: number): GroupFile {
    const held = file.width - 2
    if (held < 1) throw new TypeError(`train: negativesPerExample needs hard negatives; ${file.path} holds pairs (anchor, positive)`)
    if (!Number.isSafeInteger(negatives) || negatives < 1 || negatives > held)
      throw new RangeError(
        `train: negativesPerExample ${negatives} is not in [1, ${held}]: each example of ${file.path} has ${held} hard negatives`,
      )
    const groups = Array.from({ length: file.count }, (_, i) => {
      const t = file.textsOf(i)
      return { query: t[0], pos: [t[1]], neg: t.slice(2) }
    })
    return new GroupFile(file.path, groups, negatives, seed, file.fingerprint, file.format, `${file.count} ${exampleKind(file.width)}`)
  }

  get count(): number {
    return this.groups.length
  }

  /** Columns of each drawn tuple: the query, a positive and k negatives. */
  get width(): number {
    return 2 + this.negatives
  }

  describe(): string {
    const drawn = exampleKind(this.width).replace(/s \(/, ' (')
    if (this.tuples)
      return `${this.path}: ${this.tuples}, ${this.negatives} of each example's hard negatives drawn every epoch (${drawn}), read as ${this.format}`
    const range = (xs: number[]) => {
      let lo = Infinity,
        hi = 0
      for (const x of xs) {
        lo = Math.min(lo, x)
        hi = Math.max(hi, x)
      }
      return lo === hi ? `${lo}` : `${lo}-${hi}`
    }
    const pos = range(this.groups.map((g) => g.pos.length)),
      neg = range(this.groups.map((g) => g.neg.length))
    return (
      `${this.path}: ${this.count} groups (query, ${pos} positives, ${neg} hard negatives), each drawn every epoch as ` +
      `${drawn}, read as jsonl`
    )
  }

  /**
   * Reads and checks the whole file: strict UTF-8, one object per line with query (text), pos and neg (lists of
   * text, neither empty). Errors name the file, the line and the key.
   */
  static async open(path: string, negatives: number, seed: number): Promise<GroupFile> {
    if (!Number.isSafeInteger(negatives) || negatives < 1)
      throw new RangeError(`negatives per example must be an integer >= 1, got ${negatives}`)
    let buf: Buffer
    try {
      if ((await stat(path)).isDirectory()) throw new Error(`${path}: is a directory, expected a jsonl file`)
      buf = await readFile(path)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      throw code === 'ENOENT' ? new Error(`${path}: no such file`) : e
    }
    let text: string
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(buf)
    } catch {
      throw new Error(`${path}: invalid UTF-8 (byte offset ${firstInvalidUtf8(buf)})`)
    }
    const groups: Group[] = []
    text
      .replace(/^\ufeff/, '')
      .split('\n')
      .forEach((raw, k) => {
        const line = raw.replace(/\r$/, '')
        if (line.trim() === '') return
        const where = `${path}: line ${k + 1}`
        const o = jsonObjectOf(line, where)
        const text = (v: unknown) => typeof v === 'string' && v.trim() !== ''
        if (!text(o.query)) throw new Error(`${where}: query must be a non-empty string`)
        for (const key of ['pos', 'neg'] as const) {
          const list = o[key]
          if (!Array.isArray(list) || list.length === 0 || !list.every(text))
            throw new Error(
              `${where}: ${key} must be a non-empty list of non-empty strings` +
                (key === 'neg' ? ' (examples without hard negatives train as pairs: anchor,positive)' : ''),
            )
        }
        groups.push({ query: o.query as string, pos: o.pos as string[], neg: o.neg as string[] })
      })
    if (groups.length === 0) throw new Error(`${path}: no examples`)
    const fingerprint = { bytes: buf.length, lines: groups.length, sha256: createHash('sha256').update(buf).digest('hex') }
    return new GroupFile(path, groups, negatives, seed, fingerprint)
  }

  epochOrder(epoch: number, seed: number): Uint32Array {
    return permutation(this.count, seed, epoch)
  }

  /** The tuple example i is drawn as in `epoch`: [query, positive, negative_1 .. negative_k]. */
  draw(i: number, epoch: number): string[] {
    const g = this.groups[i]
    const next = xoshiro128(this.seed, (i ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0)
    const below = (m: number) => {
      const limit = 0x100000000 - (0x100000000 % m) // no modulo bias
      let r = next()
      while (r >= limit) r = next()
      return r % m
    }
    const positive = g.pos[below(g.pos.length)]
    // k of the pool without replacement (a partial Fisher-Yates), the pool neg repeated to at least k.
    const pool = Array.from(
      { length: Math.max(g.neg.length, Math.ceil(this.negatives / g.neg.length) * g.neg.length) },
      (_, j) => j % g.neg.length,
    )
    const picked: string[] = []
    for (let j = 0; j < this.negatives; j++) {
      const r = j + below(pool.length - j)
      ;[pool[j], pool[r]] = [pool[r], pool[j]]
      picked.push(g.neg[pool[j]])
    }
    return [g.query, positive, ...picked]
  }

  /** The tuples of these examples as drawn in `epoch`, by column (queries, positives, then each negative column). */
  async readColumns(indices: ArrayLike<number>, epoch = 0): Promise<string[][]> {
    const tuples = Array.from(indices, (i) => this.draw(i, epoch))
    return Array.from({ length: this.width }, (_, c) => tuples.map((t) => t[c]))
  }

  /** Example i's sentences, every one it may be drawn with (what batches without repeats compare). */
  textsOf(i: number): string[] {
    const g = this.groups[i]
    return [g.query, ...g.pos, ...g.neg]
  }

  /** Each example's sentences as one text (what a vocabulary built from the data counts). */
  async readLines(indices: ArrayLike<number>): Promise<string[]> {
    return Array.from(indices, (i) => this.textsOf(i).join('\n'))
  }

  async close(): Promise<void> {}
}
