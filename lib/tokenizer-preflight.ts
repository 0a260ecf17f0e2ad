// Checks of a tokenizer.json made before the tokenizers library reads it, for the parts on which that library
// aborts the whole process (a Rust panic nobody catches) instead of returning an error, as it does for every
// other malformed part: a SentencePiece Precompiled normalizer's charsmap (precompiled-charsmap.ts), and a
// TemplateProcessing post-processor whose templates name a special token its special_tokens lacks (found by
// trying malformed files against tokenizers 0.23.2). Each failure is an Error naming the file and the part.
import { precompiledCharsmapProblem } from './precompiled-charsmap.js'

/** A JSON object (not null, not an array). */
export function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

/** Throws where the tokenizers library would abort on `json` (a parsed tokenizer.json read from `file`). */
export function preflightTokenizerJson(json: Record<string, unknown>, file: string): void {
  const fail = (part: string, problem: string): never => {
    throw new Error(`${file}: tokenizers could not load it (its ${part} ${problem})`)
  }
  const normalizers = (n: unknown): void => {
    if (!isObject(n)) return
    if (n.type === 'Sequence' && Array.isArray(n.normalizers)) return n.normalizers.forEach(normalizers)
    if (n.type !== 'Precompiled') return
    const problem = precompiledCharsmapProblem(n.precompiled_charsmap)
    if (problem) fail("Precompiled normalizer's precompiled_charsmap", problem)
  }
  const processors = (p: unknown): void => {
    if (!isObject(p)) return
    if (p.type === 'Sequence' && Array.isArray(p.processors)) return p.processors.forEach(processors)
    if (p.type !== 'TemplateProcessing') return
    const defined = isObject(p.special_tokens) ? p.special_tokens : {}
    for (const which of ['single', 'pair'] as const) {
      const template = p[which]
      if (!Array.isArray(template)) continue
      for (const piece of template) {
        const id = isObject(piece) && isObject(piece.SpecialToken) ? piece.SpecialToken.id : undefined
        if (typeof id === 'string' && !Object.hasOwn(defined, id))
          fail(
            `TemplateProcessing post-processor's ${which} template`,
            `uses the special token ${JSON.stringify(id)}, which special_tokens does not define`,
          )
      }
    }
  }
  normalizers(json.normalizer)
  processors(json.post_processor)
}
