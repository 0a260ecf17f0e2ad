// `simcsepp eval --update-card`: a model folder's README.md given the evaluation's results as `model-index` metadata,
// merged with the results it holds (a dataset scored again replaces its result: same task type, dataset name, split and
// config), as MTEB's create_meta updates a card. Only the front matter's `metrics` and `model-index` are rewritten;
// every other key and the card's text stay byte for byte. The card is read as PyYAML (the Hub's reader) reads it:
// YAML 1.1.
import { constants } from 'node:fs'
import { access, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { isMap, isScalar, parseDocument, type Pair } from 'yaml'
import { writeFileAtomic } from '../util/atomic-write.js'
import { indexLines, mergeResults, type Result } from './model-index.js'

export interface CardUpdate {
  /** The card written. */
  path: string
  /** Results written (the evaluation's, with a score), of which `replaced` took the place of one the card had. */
  written: number
  replaced: number
  /** Results of the card's that were kept as they were. */
  kept: number
  /** Whether the folder had no README.md (one was made). */
  created: boolean
}

// The front matter: '---' on the first line, up to the next line that is '---' (or '...', YAML's document end).
const FRONT_MATTER = /^---[ \t]*(\r?\n)([\s\S]*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|$)/m

/** A card as read: its text (null: no README.md), and where it has front matter, that and what it holds. */
interface Card {
  path: string
  text: string | null
  front: { whole: string; eol: string; yaml: string; pairs: Pair[]; data: Record<string, unknown> } | null
}

async function readCard(dir: string): Promise<Card> {
  const path = join(dir, 'README.md')
  let text: string | null = null
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const match = text === null ? null : FRONT_MATTER.exec(text)
  if (!match || match.index !== 0) return { path, text, front: null }
  const [whole, eol, yaml] = match
  const doc = parseDocument(yaml, { version: '1.1' })
  if (doc.errors.length) throw new Error(`${path}: its metadata (front matter) is not YAML: ${doc.errors[0].message.split('\n')[0]}`)
  if (doc.contents !== null && !(isMap(doc.contents) && !doc.contents.flow))
    throw new Error(`${path}: its metadata (front matter) is not a block of keys, which is what this rewrites: not changed`)
  const data = (doc.toJS() ?? {}) as Record<string, unknown>
  const index = data['model-index']
  const entry = Array.isArray(index) && index.length === 1 ? (index[0] as Record<string, unknown>) : null
  // (an empty `model-index:` is none)
  if (index != null && !(entry && typeof entry === 'object' && (entry.results === undefined || Array.isArray(entry.results))))
    throw new Error(`${path}: its model-index is not one model's list of results, which is what this writes: not changed`)
  return { path, text, front: { whole, eol, yaml, pairs: (doc.contents?.items ?? []) as Pair[], data } }
}

/**
 * Throws where `dir`/README.md could not be updated (its front matter not YAML, its model-index of another shape, the
 * folder not writable): checked before a long evaluation, and again when writing.
 */
export async function checkModelCard(dir: string): Promise<void> {
  await access(dir, constants.W_OK).catch((err: NodeJS.ErrnoException) => {
    throw new Error(
      err.code === 'ENOENT'
        ? `${dir}: no such model folder`
        : `${dir}: the model folder cannot be written, so its README.md cannot be updated`,
    )
  })
  await readCard(dir)
}

/** Writes `results` into `dir`/README.md's model-index (see the header); nothing is written when it cannot be read. */
export async function updateModelIndex(dir: string, results: Result[]): Promise<CardUpdate> {
  const { path, text, front } = await readCard(dir)
  if (!front) {
    // No card, or one without metadata: the metadata before its text (a new card names the model and its library).
    const name = basename(dir)
    const head = text === null ? ['library_name: sentence-transformers', 'pipeline_tag: sentence-similarity'] : []
    const body = text ?? `# ${name}\n\nA sentence encoder; its evaluation results are in this card's metadata (\`simcsepp eval\`).\n`
    await writeFileAtomic(path, ['---', ...head, ...indexLines(name, results), '---', '', body].join('\n'))
    return { path, written: results.length, replaced: 0, kept: 0, created: text === null }
  }
  const { whole, eol, yaml, pairs, data } = front
  const entry = (data['model-index'] as Record<string, unknown>[] | undefined)?.[0] ?? {}
  const { results: merged, replaced } = mergeResults((entry.results as unknown[] | undefined) ?? [], results)
  const name = typeof entry.name === 'string' ? entry.name : basename(dir)
  const metrics = Array.isArray(data.metrics) ? data.metrics : data.metrics == null ? [] : [data.metrics]
  // The other keys' text as it was: each key's runs from its line to the next key's line.
  const keyOf = (p: Pair) => (isScalar(p.key) ? String(p.key.value) : null)
  const starts = pairs.map((p) => {
    const at = (p.key as { range?: number[] } | null)?.range?.[0] ?? 0
    return yaml.lastIndexOf('\n', at - 1) + 1
  })
  let kept = ''
  let from = 0
  for (const [i, p] of pairs.entries())
    if (keyOf(p) === 'metrics' || keyOf(p) === 'model-index') {
      kept += yaml.slice(from, starts[i])
      from = i + 1 < pairs.length ? starts[i + 1] : yaml.length
    }
  kept += yaml.slice(from)
  if (kept && !kept.endsWith('\n')) kept += eol
  const added = indexLines(name, merged, metrics, entry).join(eol) + eol
  await writeFileAtomic(path, `---${eol}${kept}${added}---${eol}${text!.slice(whole.length)}`)
  return { path, written: results.length, replaced, kept: merged.length - results.length, created: false }
}
