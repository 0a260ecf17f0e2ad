// `simcsepp export`: writes the transformers.js folder, prints what it wrote, lists every flag it parses
// in its --help, and refuses a missing model, an unknown format and an existing output folder.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cli, needsCli } from './helpers/train-corpus.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'

const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })
const root = mkdtempSync(join(tmpdir(), 'simcsepp-export-cli-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

t.test('export --format onnx writes the folder beside the model, with the settings it used', needsCli, async (t) => {
  const model = await saveTinyModel({ dir: join(root, 'model'), pooling: 'mean' })
  const r = run('export', '--format', 'onnx', '--model', model + '/', '--max-len', '20')
  t.equal(r.status, 0, r.stderr)
  const out = join(root, 'model-onnx')
  t.match(r.stdout, `wrote ${out}: onnx/model.onnx (`)
  t.match(r.stdout, 'inputs input_ids, attention_mask, token_type_ids (int64 [batch_size, sequence_length])')
  t.match(r.stdout, 'sentence_embedding (mean pooling); max length 20 tokens')
  t.same(readdirSync(out).sort(), [
    'config.json',
    'onnx',
    'special_tokens_map.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'vocab.txt',
  ])
  t.equal(JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')).model_max_length, 20)

  const again = run('export', '--format', 'onnx', '--model', model)
  t.equal(again.status, 1)
  t.match(again.stderr, /already holds files \(config\.json, onnx, .*\): choose another folder or pass --overwrite/)
  const fp16 = run(
    'export',
    '--format',
    'onnx',
    '--model',
    model,
    '--out',
    out,
    '--overwrite',
    '--weights',
    'fp16',
    '--pooling',
    'cls',
    '--normalize',
  )
  t.equal(fp16.status, 0, fp16.stderr)
  t.match(fp16.stdout, 'onnx/model_fp16.onnx')
  t.match(fp16.stdout, 'sentence_embedding (cls pooling, normalised)')
  t.ok(existsSync(join(out, 'onnx', 'model_fp16.onnx')))
  const q8 = run('export', '--format', 'onnx', '--model', model, '--out', out, '--overwrite', '--weights', 'q8,fp32')
  t.equal(q8.status, 0, q8.stderr)
  t.match(q8.stdout, /wrote .*: onnx\/model_quantized\.onnx \([\d.]+ MiB\), onnx\/model\.onnx \([\d.]+ MiB\), config\.json/)
  t.ok(existsSync(join(out, 'onnx', 'model_quantized.onnx')))
  t.same(
    readdirSync(join(out, 'onnx')).sort(),
    ['model.onnx', 'model_fp16.onnx', 'model_quantized.onnx'],
    "an earlier export's file is left",
  )
})

t.test('export --model . writes DIR-onnx beside the current folder', needsCli, async (t) => {
  const model = await saveTinyModel({ dir: join(root, 'dot-model') })
  const r = spawnSync(process.execPath, [cli, 'export', '--format', 'onnx', '--model', '.'], { cwd: model, encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.ok(existsSync(join(root, 'dot-model-onnx', 'onnx', 'model.onnx')), 'dot-model-onnx/onnx/model.onnx')
})

t.test('bad input: usage errors (exit 2) and clear errors (exit 1)', needsCli, async (t) => {
  const model = await saveTinyModel({ dir: join(root, 'bad-model') })
  const cases: [string[], number, RegExp][] = [
    [['export', '--model', model], 2, /export: --format is required \(onnx\)/],
    [['export', '--format', 'tflite', '--model', model], 2, /--format must be one of onnx \(got "tflite"\)/],
    [['export', '--format', 'onnx'], 2, /export: --model DIR is required/],
    [
      ['export', '--format', 'onnx', '--model', model, '--pooling', 'lasttoken'],
      2,
      /--pooling must be one of cls, mean, max, mean_sqrt_len/,
    ],
    [['export', '--format', 'onnx', '--model', model, '--weights', 'int4'], 2, /--weights must be one of fp32, fp16, q8/],
    [['export', '--format', 'onnx', '--model', model, '--weights', 'fp32,,q8'], 2, /--weights must be one of fp32, fp16, q8 \(got ""\)/],
    [['export', '--format', 'onnx', '--model', model, '--max-len', 'x'], 2, /--max-len/],
    [['export', '--format', 'onnx', '--model', join(root, 'nope')], 1, /no such model directory/],
    [['export', '--format', 'onnx', '--modle', model], 2, /unknown option --modle \(did you mean --model\?\)/],
  ]
  for (const [args, status, message] of cases) {
    const r = run(...args)
    t.equal(r.status, status, args.join(' '))
    t.match(r.stderr, message)
  }
  const file = join(root, 'a-file')
  writeFileSync(file, '')
  const r = run('export', '--format', 'onnx', '--model', model, '--out', file)
  t.equal(r.status, 1)
  t.match(r.stderr, /is a file, not a directory/)
})

t.test('export --help lists every flag it parses; the top-level usage includes it', needsCli, async (t) => {
  const own = run('export', '--help')
  t.equal(own.status, 0)
  t.ok(own.stdout.startsWith('simcsepp export --format onnx --model DIR'))
  const top = run('--help').stdout
  const src = readFileSync('lib/cli/export-command.ts', 'utf8')
  const flags = [...src.matchAll(/^\s+'?([a-z][a-z-]*)'?: \{ type: '(?:string|boolean)'/gm)].map((m) => m[1])
  t.ok(flags.length >= 8, `${flags.length} flags`)
  for (const flag of flags) {
    t.ok(own.stdout.includes(`--${flag}`), `export --help lists --${flag}`)
    t.ok(top.includes(`--${flag}`), `the top-level usage lists --${flag}`)
  }
})
