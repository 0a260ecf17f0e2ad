// The files that make an output directory a sentence-transformers model (Transformer + CLS Pooling),
// next to the Hugging Face files, so SentenceTransformer(dir) and AutoModel.from_pretrained(dir) load it.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../util/atomic-write.js'

export async function writeSentenceTransformersFiles(
  dir: string,
  hiddenSize: number,
  maxSeqLength: number,
  pooling: 'cls' | 'mean' = 'cls',
): Promise<void> {
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n'
  await writeFileAtomic(
    join(dir, 'modules.json'),
    json([
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ]),
  )
  await writeFileAtomic(join(dir, 'sentence_bert_config.json'), json({ max_seq_length: maxSeqLength, do_lower_case: false }))
  await writeFileAtomic(
    join(dir, 'config_sentence_transformers.json'),
    // No __version__: the library versions it records are those of the Python packages that saved the
    // model, and none did here (sentence-transformers only compares it, when present, with its own).
    json({
      prompts: {},
      default_prompt_name: null,
      similarity_fn_name: 'cosine',
    }),
  )
  await mkdir(join(dir, '1_Pooling'), { recursive: true })
  await writeFileAtomic(
    join(dir, '1_Pooling', 'config.json'),
    json({
      word_embedding_dimension: hiddenSize,
      pooling_mode_cls_token: pooling === 'cls',
      pooling_mode_mean_tokens: pooling === 'mean',
      pooling_mode_max_tokens: false,
      pooling_mode_mean_sqrt_len_tokens: false,
      pooling_mode_weightedmean_tokens: false,
      pooling_mode_lasttoken: false,
      include_prompt: true,
    }),
  )
}
