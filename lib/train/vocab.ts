// A WordPiece vocabulary built from the training sentences, for models trained from scratch without
// a pretrained tokenizer (the default demo): the special tokens, every character seen (as a word
// start and as a ##continuation, so no text is ever [UNK]), then the most frequent words.
// Words are split as BERT's BasicTokenizer does (lowercase, accents stripped, punctuation apart).
import { writeFileAtomic } from '../util/atomic-write.js'

export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']

export function basicWords(text: string): string[] {
  const clean = text
    .toLowerCase()
    .normalize('NFD')
    .replace(/\p{Mn}/gu, '')
  return clean.split(/\s+|(?=[\p{P}\p{S}])|(?<=[\p{P}\p{S}])/u).filter((w) => w.length > 0)
}

export function buildVocab(sentences: Iterable<string>, size: number): string[] {
  const words = new Map<string, number>()
  const chars = new Map<string, number>()
  for (const s of sentences)
    for (const w of basicWords(s)) {
      words.set(w, (words.get(w) ?? 0) + 1)
      for (const ch of w) chars.set(ch, (chars.get(ch) ?? 0) + 1)
    }
  const byCount = <K>(m: Map<K, number>) => [...m.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([k]) => k)
  const vocab = [...SPECIAL_TOKENS]
  const seen = new Set(vocab)
  const push = (t: string) => {
    if (!seen.has(t)) {
      seen.add(t)
      vocab.push(t)
    }
  }
  for (const ch of byCount(chars)) push(ch)
  for (const ch of byCount(chars)) push(`##${ch}`)
  for (const w of byCount(words)) {
    if (vocab.length >= size) break
    if ((words.get(w) ?? 0) >= 2) push(w)
  }
  return vocab
}

export async function writeVocab(path: string, vocab: string[]): Promise<void> {
  await writeFileAtomic(path, vocab.join('\n') + '\n')
}
