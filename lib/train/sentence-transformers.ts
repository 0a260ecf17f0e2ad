// The files that make an output directory a sentence-transformers model (Transformer + CLS or mean Pooling
// [+ Dense modules] [+ Normalize]), next to the Hugging Face files, so SentenceTransformer(dir) and
// AutoModel.from_pretrained(dir) load it. A model fine-tuned from a sentence-transformers model keeps what its folder said beyond the pooling: its
// Normalize module, prompts, default prompt, similarity function, truncate_dim and include_prompt.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../util/atomic-write.js'
import { POOLING_CONFIG_KEYS, POOLINGS, type Pooling } from '../model/pooling.js'
import type { SimilarityFn } from '../embed/similarity-fn.js'

/** What a base model's sentence-transformers files said that the output keeps (all optional). */
export interface InheritedSettings {
  normalize?: boolean
  prompts?: Record<string, string>
  defaultPromptName?: string
  similarityFnName?: SimilarityFn
  truncateDim?: number
  includePrompt?: boolean
}

export async function writeSentenceTransformersFiles(
  dir: string,
  hiddenSize: number,
  maxSeqLength: number,
  pooling: Pooling = 'cls',
  inherited: InheritedSettings = {},
  /** Dense modules after the pooling, whose folders (2_Dense, 3_Dense, ...: denseModulePath) the caller writes. */
  denseCount = 0,
): Promise<void> {
  const normalizeDir = `${2 + denseCount}_Normalize`
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n'
  await writeFileAtomic(
    join(dir, 'modules.json'),
    json([
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      ...Array.from({ length: denseCount }, (_, i) => ({
        idx: 2 + i,
        name: String(2 + i),
        path: denseModulePath(i),
        type: 'sentence_transformers.models.Dense',
      })),
      ...(inherited.normalize
        ? [{ idx: 2 + denseCount, name: String(2 + denseCount), path: normalizeDir, type: 'sentence_transformers.models.Normalize' }]
        : []),
    ]),
  )
  // sentence-transformers saves the Normalize module as an empty folder.
  if (inherited.normalize) await mkdir(join(dir, normalizeDir), { recursive: true })
  await writeFileAtomic(join(dir, 'sentence_bert_config.json'), json({ max_seq_length: maxSeqLength, do_lower_case: false }))
  await writeFileAtomic(
    join(dir, 'config_sentence_transformers.json'),
    // No __version__: the library versions it records are those of the Python packages that saved the
    // model, and none did here (sentence-transformers only compares it, when present, with its own).
    json({
      prompts: inherited.prompts ?? {},
      default_prompt_name: inherited.defaultPromptName ?? null,
      similarity_fn_name: inherited.similarityFnName ?? 'cosine',
      ...(inherited.truncateDim !== undefined ? { truncate_dim: inherited.truncateDim } : {}),
    }),
  )
  await mkdir(join(dir, '1_Pooling'), { recursive: true })
  await writeFileAtomic(
    join(dir, '1_Pooling', 'config.json'),
    json({
      word_embedding_dimension: hiddenSize,
      ...Object.fromEntries(POOLINGS.map((mode) => [POOLING_CONFIG_KEYS[mode], pooling === mode])),
      pooling_mode_weightedmean_tokens: false,
      pooling_mode_lasttoken: false,
      include_prompt: inherited.includePrompt ?? true,
    }),
  )
}

/** The folder of Dense module i (0-based) in a saved model, as sentence-transformers names it. */
export function denseModulePath(i: number): string {
  return `${2 + i}_Dense`
}
