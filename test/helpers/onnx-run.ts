// Runs an exported .onnx file with onnxruntime-node on sentences tokenized by the model's own Tokenizer.
import * as ort from 'onnxruntime-node'
import { Tokenizer } from '../../lib/tokenizer.js'

/** The session's outputs for `texts` (padded to the longest, at most maxLength tokens) and the batch it ran. */
export async function ortRun(
  file: string,
  dir: string,
  texts: string[],
  inputs: string[],
  maxLength: number,
  options: ort.InferenceSession.SessionOptions = {},
) {
  const session = await ort.InferenceSession.create(file, options)
  const tok = await Tokenizer.load(dir)
  const enc = await tok.encodeBatch(texts, { maxLength })
  const [B, T] = enc.shape
  const i64 = (a: Int32Array) =>
    new ort.Tensor(
      'int64',
      BigInt64Array.from(a, (v) => BigInt(v)),
      [B, T],
    )
  const all: Record<string, ort.Tensor> = {
    input_ids: i64(enc.inputIds),
    attention_mask: i64(enc.attentionMask),
    token_type_ids: i64(enc.tokenTypeIds),
  }
  const feeds = Object.fromEntries(inputs.map((n) => [n, all[n]]))
  const out = await session.run(feeds)
  await session.release()
  return { out, enc }
}
