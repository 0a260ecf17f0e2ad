// `simcsepp export --format onnx`: a thin layer over exportOnnx (lib/export/export-onnx.ts).
import { basename, resolve } from 'node:path'
import { exportOnnx } from '../export/export-onnx.js'
import { isHubModelId } from '../hub/hub-model.js'
import { resolveModelFlag } from './hub-download.js'
import { num, oneOf, parseFlags, UsageError } from './args.js'
import { exportUsage } from './help.js'
import { POOLINGS } from '../model/pooling.js'

/** simcsepp export --format onnx --model DIR [--out DIR] [options] */
export async function exportCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(exportUsage, {
    args: argv,
    options: {
      format: { type: 'string' },
      model: { type: 'string' },
      out: { type: 'string' },
      pooling: { type: 'string' },
      normalize: { type: 'boolean' },
      'max-len': { type: 'string' },
      weights: { type: 'string' },
      overwrite: { type: 'boolean', default: false },
    },
  })
  if (!values.format) throw new UsageError('export: --format is required (onnx)')
  oneOf('format', values.format, ['onnx'] as const)
  if (!values.model) throw new UsageError('export: --model DIR is required')
  // Beside the model by default (never inside it: the model's own files stay as they are); a Hub model's, in the
  // working folder under its name.
  const hub = isHubModelId(values.model)
  const out = values.out ?? (hub ? `${basename(values.model.split('@')[0])}-onnx` : `${resolve(values.model)}-onnx`) // `--model .` too
  const r = await exportOnnx(await resolveModelFlag(values.model), out, {
    pooling: oneOf('pooling', values.pooling, POOLINGS),
    normalize: values.normalize,
    maxLength: num('max-len', values['max-len'], { int: true, min: 3 }),
    weights: values.weights?.split(',').map((w) => oneOf('weights', w, ['fp32', 'fp16', 'q8'] as const)!),
    overwrite: values.overwrite,
  })
  process.stdout.write(
    `wrote ${r.out}: ${r.files.map((f) => `${f.file.slice(r.out.length + 1)} (${(f.bytes / 2 ** 20).toFixed(1)} MiB)`).join(', ')}, ` +
      'config.json, tokenizer.json, ' +
      `tokenizer_config.json, special_tokens_map.json\n` +
      `  inputs ${r.inputs.join(', ')} (int64 [batch_size, sequence_length]); outputs last_hidden_state, ` +
      `sentence_embedding (${r.pooling} pooling${r.normalize ? ', normalised' : ''}); max length ${r.maxLength} tokens\n`,
  )
}
