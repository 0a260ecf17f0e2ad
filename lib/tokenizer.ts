// Sentence -> padded id tensors, over Hugging Face's `tokenizers` Node bindings.
// A model directory is read as transformers does: tokenizer.json when present, otherwise a BERT
// WordPiece tokenizer rebuilt from vocab.txt (+ tokenizer_config.json for lowercasing), so that both
// paths give the same ids.

import { promises as fsp } from 'node:fs'
import { basename, join } from 'node:path'
import { Tokenizer as HfTokenizer, WordPiece, bertNormalizer, bertPreTokenizer, templateProcessing, wordPieceDecoder } from 'tokenizers'
import { replaceFileAtomic, writeFileAtomic } from './util/atomic-write.js'
import { isObject, preflightTokenizerJson } from './tokenizer-preflight.js'
import { parseJson, readJsonFile } from './util/json.js'

export interface TokenizeOptions {
  /** Maximum tokens per sentence, [CLS] and [SEP] included; longer sentences are truncated. Default 32. */
  maxLength?: number
}

/** Row-major [B, T] batch, padded to the longest sentence of the batch. */
export interface EncodedBatch {
  inputIds: Int32Array
  /** 1 for real tokens (special tokens included), 0 for padding. */
  attentionMask: Int32Array
  tokenTypeIds: Int32Array
  shape: [number, number]
}

interface Source {
  /** The file the tokenizer came from (tokenizer.json or vocab.txt). */
  file: string
  /** vocab.txt text verbatim when loaded from one, for save(). */
  vocabText?: string
  /** tokenizer_config.json found next to the source, copied by save(). */
  tokenizerConfig?: Record<string, unknown>
  /** Whether the model is WordPiece (so a vocab.txt can be derived). */
  wordPiece: boolean
  lowercase: boolean
}

const BERT_SPECIALS = { unk: '[UNK]', sep: '[SEP]', pad: '[PAD]', cls: '[CLS]', mask: '[MASK]' } as const

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(
    () => true,
    () => false,
  )
}

/** tokenizer_config.json stores special tokens either as strings or as AddedToken objects. */
function tokenName(x: unknown, fallback: string): string {
  if (typeof x === 'string') return x
  if (isObject(x) && typeof x.content === 'string') return x.content
  return fallback
}

export class Tokenizer {
  /** Number of special tokens the post-processor adds to one sentence ([CLS] + [SEP] = 2 for BERT). */
  private readonly numSpecial: number
  private queue: Promise<unknown> = Promise.resolve()
  private truncation: number | null = null

  private constructor(
    private readonly hf: HfTokenizer,
    private readonly source: Source,
    /** Padding id, from the tokenizer's padding settings, else its [PAD] / <pad> token, else 0. */
    readonly padTokenId: number,
    numSpecial: number,
  ) {
    this.numSpecial = numSpecial
  }

  /**
   * Loads a tokenizer from a model directory (tokenizer.json, else vocab.txt) or from a
   * tokenizer.json / vocab.txt file.
   */
  static async load(pathOrDir: string): Promise<Tokenizer> {
    let st
    try {
      st = await fsp.stat(pathOrDir)
    } catch {
      throw new Error(`${pathOrDir}: tokenizer path not found`)
    }
    if (st.isDirectory()) {
      const json = join(pathOrDir, 'tokenizer.json')
      if (await exists(json)) return Tokenizer.fromTokenizerJson(json)
      const vocab = join(pathOrDir, 'vocab.txt')
      if (await exists(vocab)) return Tokenizer.fromVocabFile(vocab)
      throw new Error(`${pathOrDir}: no tokenizer.json or vocab.txt in this directory`)
    }
    const name = basename(pathOrDir)
    if (name.endsWith('.json')) return Tokenizer.fromTokenizerJson(pathOrDir)
    if (name.endsWith('.txt')) return Tokenizer.fromVocabFile(pathOrDir)
    throw new Error(`${pathOrDir}: expected a directory, a tokenizer.json or a vocab.txt`)
  }

  /** A Hugging Face tokenizer.json file. */
  static async fromTokenizerJson(file: string): Promise<Tokenizer> {
    let text: string
    try {
      text = await fsp.readFile(file, 'utf8')
    } catch (e) {
      throw new Error(`${file}: cannot read tokenizer (${(e as Error).message})`)
    }
    const json = parseJson(text, file)
    if (!isObject(json) || !isObject(json.model)) throw new Error(`${file}: not a tokenizers file (no "model" object)`)
    preflightTokenizerJson(json, file)
    let hf: HfTokenizer
    try {
      hf = HfTokenizer.fromString(text)
    } catch (e) {
      throw new Error(`${file}: tokenizers could not load it (${(e as Error).message})`)
    }
    const normalizer = json.normalizer
    const lowercase = isObject(normalizer) && normalizer.type === 'BertNormalizer' ? normalizer.lowercase !== false : false
    const padding = json.padding
    let padId: number | null = isObject(padding) && typeof padding.pad_id === 'number' ? padding.pad_id : null
    padId ??= hf.tokenToId('[PAD]') ?? hf.tokenToId('<pad>') ?? 0
    const dir = file.slice(0, file.length - basename(file).length) || '.'
    const tokenizerConfig = await Tokenizer.readTokenizerConfig(dir)
    return Tokenizer.finish(hf, { file, wordPiece: json.model.type === 'WordPiece', lowercase, tokenizerConfig }, padId)
  }

  /**
   * Rebuilds bert-base's tokenizer from a WordPiece vocab.txt, as transformers' BertTokenizerFast does;
   * lowercasing follows tokenizer_config.json's do_lower_case next to the file (default true).
   */
  static async fromVocabFile(file: string): Promise<Tokenizer> {
    let vocabText: string
    try {
      vocabText = await fsp.readFile(file, 'utf8')
    } catch (e) {
      throw new Error(`${file}: cannot read vocabulary (${(e as Error).message})`)
    }
    const dir = file.slice(0, file.length - basename(file).length) || '.'
    const cfg = (await Tokenizer.readTokenizerConfig(dir)) ?? {}
    const lowercase = cfg.do_lower_case !== false
    const stripAccents = typeof cfg.strip_accents === 'boolean' ? cfg.strip_accents : lowercase
    const handleChineseChars = cfg.tokenize_chinese_chars !== false
    const names = {
      unk: tokenName(cfg.unk_token, BERT_SPECIALS.unk),
      sep: tokenName(cfg.sep_token, BERT_SPECIALS.sep),
      pad: tokenName(cfg.pad_token, BERT_SPECIALS.pad),
      cls: tokenName(cfg.cls_token, BERT_SPECIALS.cls),
      mask: tokenName(cfg.mask_token, BERT_SPECIALS.mask),
    }

    let model
    try {
      model = await WordPiece.fromFile(file, { unkToken: names.unk })
    } catch (e) {
      throw new Error(`${file}: tokenizers could not read the WordPiece vocabulary (${(e as Error).message})`)
    }
    const hf = new HfTokenizer(model)
    hf.setNormalizer(bertNormalizer({ cleanText: true, handleChineseChars, stripAccents, lowercase }))
    hf.setPreTokenizer(bertPreTokenizer())
    hf.setDecoder(wordPieceDecoder('##', true))
    for (const [role, tok] of Object.entries(names)) {
      if (role !== 'mask' && hf.tokenToId(tok) === null) throw new Error(`${file}: the vocabulary has no ${role} token ${tok}`)
    }
    const cls = hf.tokenToId(names.cls)!
    const sep = hf.tokenToId(names.sep)!
    hf.setPostProcessor(
      templateProcessing(`${names.cls} $A ${names.sep}`, `${names.cls} $A ${names.sep} $B:1 ${names.sep}:1`, [
        [names.cls, cls],
        [names.sep, sep],
      ]),
    )
    // As in transformers: special tokens are matched whole in the raw text, never split by WordPiece.
    hf.addSpecialTokens(Object.values(names).filter((tok) => hf.tokenToId(tok) !== null))
    return Tokenizer.finish(
      hf,
      { file, vocabText, wordPiece: true, lowercase, tokenizerConfig: Object.keys(cfg).length ? cfg : undefined },
      hf.tokenToId(names.pad)!,
    )
  }

  private static async readTokenizerConfig(dir: string): Promise<Record<string, unknown> | undefined> {
    const file = join(dir, 'tokenizer_config.json')
    if (!(await exists(file))) return undefined
    const cfg = await readJsonFile(file)
    if (!isObject(cfg)) throw new Error(`${file}: expected a JSON object`)
    return cfg
  }

  private static async finish(hf: HfTokenizer, source: Source, padId: number): Promise<Tokenizer> {
    // We truncate per call and pad ourselves, whatever the file asked for.
    hf.disableTruncation()
    hf.disablePadding()
    const empty = await hf.encode('')
    return new Tokenizer(hf, source, padId, empty.getLength())
  }

  /** Vocabulary size including added tokens: the rows the word embedding needs. */
  get vocabSize(): number {
    return this.hf.getVocabSize(true)
  }

  /** The file this tokenizer was loaded from. */
  get sourceFile(): string {
    return this.source.file
  }

  tokenToId(token: string): number | null {
    return this.hf.tokenToId(token)
  }

  idToToken(id: number): string | null {
    return this.hf.idToToken(id)
  }

  /** Runs calls one at a time: truncation is tokenizer-wide state in the bindings. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => {})
    return run
  }

  /** Tokenizes a batch, truncating each sentence to maxLength tokens and padding to the longest. */
  encodeBatch(sentences: readonly string[], options: TokenizeOptions = {}): Promise<EncodedBatch> {
    const maxLength = options.maxLength ?? 32
    if (!Array.isArray(sentences)) return Promise.reject(new Error('encodeBatch: sentences must be an array of strings'))
    const bad = sentences.findIndex((s) => typeof s !== 'string')
    if (bad >= 0) return Promise.reject(new Error(`encodeBatch: sentences[${bad}] is ${typeof sentences[bad]}, expected a string`))
    if (!Number.isSafeInteger(maxLength) || maxLength <= this.numSpecial) {
      return Promise.reject(
        new Error(`encodeBatch: maxLength must be an integer above the ${this.numSpecial} special tokens, got ${maxLength}`),
      )
    }
    return this.serial(async () => {
      if (this.truncation !== maxLength) {
        this.hf.setTruncation(maxLength)
        this.truncation = maxLength
      }
      const encodings = sentences.length ? await this.hf.encodeBatch([...sentences]) : []
      const ids = encodings.map((e) => e.getIds())
      const T = ids.reduce((m, x) => Math.max(m, x.length), 0)
      const B = ids.length
      if (T > maxLength) throw new Error(`encodeBatch: tokenizer returned ${T} tokens, more than maxLength ${maxLength}`)
      const inputIds = new Int32Array(B * T).fill(this.padTokenId)
      const attentionMask = new Int32Array(B * T)
      const tokenTypeIds = new Int32Array(B * T)
      for (let b = 0; b < B; b++) {
        const row = ids[b]!
        inputIds.set(row, b * T)
        attentionMask.fill(1, b * T, b * T + row.length)
        tokenTypeIds.set(encodings[b]!.getTypeIds(), b * T)
      }
      return { inputIds, attentionMask, tokenTypeIds, shape: [B, T] as [number, number] }
    })
  }

  /** Ids back to text, skipping special tokens. */
  decode(ids: readonly number[]): Promise<string> {
    return this.hf.decode([...ids], true)
  }

  /**
   * Writes tokenizer.json, plus vocab.txt for WordPiece tokenizers (the source file verbatim, or
   * derived from the vocabulary when its ids are 0..n-1) and tokenizer_config.json, so that
   * transformers' AutoTokenizer loads the directory. `tokenizerClass` names the class in a tokenizer_config.json
   * made here (a source without one; default BertTokenizer); a source's own is written as it came.
   */
  save(dir: string, options: { tokenizerClass?: string } = {}): Promise<void> {
    return this.serial(async () => {
      await fsp.mkdir(dir, { recursive: true })
      // Saved files should not carry our per-call truncation.
      this.hf.disableTruncation()
      this.truncation = null
      const jsonPath = join(dir, 'tokenizer.json')
      try {
        await replaceFileAtomic(jsonPath, (tmp) => this.hf.save(tmp, true))
      } catch (e) {
        throw new Error(`${jsonPath}: cannot save tokenizer (${(e as Error).message})`)
      }
      let vocabText = this.source.vocabText
      if (vocabText === undefined && this.source.wordPiece) vocabText = this.deriveVocabText()
      if (vocabText !== undefined) await writeFileAtomic(join(dir, 'vocab.txt'), vocabText)
      let cfg = this.source.tokenizerConfig
      if (cfg === undefined && !this.source.wordPiece) {
        // Another model (ModernBERT's byte-level BPE): the class given, and the special tokens the vocabulary has, so
        // that transformers' PreTrainedTokenizerFast knows its padding and separators.
        const has = (token: string) => (this.hf.tokenToId(token) ?? null) !== null
        const pick = (...names: string[]) => names.find(has)
        const pad = this.hf.idToToken(this.padTokenId) ?? undefined
        const specials = {
          unk_token: pick(BERT_SPECIALS.unk, '<unk>'),
          sep_token: pick(BERT_SPECIALS.sep, '</s>'),
          pad_token: pad !== undefined && has(pad) ? pad : pick(BERT_SPECIALS.pad, '<pad>'),
          cls_token: pick(BERT_SPECIALS.cls, '<s>'),
          mask_token: pick(BERT_SPECIALS.mask, '<mask>'),
        }
        cfg = {
          tokenizer_class: options.tokenizerClass ?? 'PreTrainedTokenizerFast',
          ...Object.fromEntries(Object.entries(specials).filter(([, v]) => v !== undefined)),
        }
      }
      if (cfg === undefined && this.source.wordPiece) {
        // BERT's special tokens, or the <s> </s> <pad> <unk> <mask> a WordPiece vocabulary such as MPNet's has instead.
        const has = (token: string) => (this.hf.tokenToId(token) ?? null) !== null
        const special = (bert: string, other: string) => (!has(bert) && has(other) ? other : bert)
        cfg = {
          do_lower_case: this.source.lowercase,
          tokenizer_class: options.tokenizerClass ?? 'BertTokenizer',
          unk_token: special(BERT_SPECIALS.unk, '<unk>'),
          sep_token: special(BERT_SPECIALS.sep, '</s>'),
          pad_token: this.hf.idToToken(this.padTokenId) ?? BERT_SPECIALS.pad,
          cls_token: special(BERT_SPECIALS.cls, '<s>'),
          mask_token: special(BERT_SPECIALS.mask, '<mask>'),
        }
      }
      if (cfg !== undefined) await writeFileAtomic(join(dir, 'tokenizer_config.json'), JSON.stringify(cfg, null, 2) + '\n')
    })
  }

  private deriveVocabText(): string | undefined {
    const vocab = this.hf.getVocab(false)
    const tokens: string[] = []
    for (const [tok, id] of Object.entries(vocab)) {
      if (tokens[id] !== undefined) return undefined
      tokens[id] = tok
    }
    for (let i = 0; i < tokens.length; i++) if (tokens[i] === undefined) return undefined
    return tokens.map((t) => t + '\n').join('')
  }
}
