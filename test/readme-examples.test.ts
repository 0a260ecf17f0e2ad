// README's examples run as written (issue 14): the encoding example on a model simcsepp train wrote
// (mean-pooled, as the demo's), with the pooling the model was trained with; `simcsepp eval --json`
// keeps its shape and adds Pearson.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import { cli, needsCli, tempDir, TINY_RUN, WORDS, writeSentences } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-readme-')
const dist = join(process.cwd(), 'dist', 'index.js')

/** The first ```js block under `heading` in README.md. */
function readmeBlock(heading: string): string {
  const readme = readFileSync('README.md', 'utf8')
  const section = readme.slice(readme.indexOf(`\n${heading}\n`))
  return /```js\n([\s\S]*?)```/.exec(section)![1]
}

t.test("the README's encoding example runs on a mean-pooled model, with its pooling", needsCli, async (t) => {
  const model = join(dir, 'simcsepp-demo')
  await train({ ...TINY_RUN, data: writeSentences(join(dir, 'data.txt'), 60), out: model, pooling: 'mean', saveEvery: 0 })
  const code = readmeBlock('## Encoding sentences')
  t.notMatch(code, /pooling: 'cls'/, 'the example does not force a pooling')
  const script = join(dir, 'example.mjs')
  writeFileSync(script, code.replace("from 'simcsepp'", `from ${JSON.stringify(dist)}`).replace("'simcsepp-demo'", JSON.stringify(model)))
  const out = execFileSync(process.execPath, [script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }).trim()
  const [pooling, dim, s0, s1] = out.split(' ')
  t.equal(pooling, 'mean', 'the model’s own pooling')
  t.equal(Number(dim), 128, "the tiny config's hidden size")
  t.ok(Math.abs(Number(s0) - Number(s1)) > 1e-3, `the two similarities differ (${s0}, ${s1})`)
  const example = execFileSync(process.execPath, ['examples/encode.mjs', model], { encoding: 'utf8' })
  t.match(example, /^3 vectors of dimension 128 \(device: cpu, pooling: mean\)\n/)
})

t.test('simcsepp eval --json: per file Spearman and Pearson, the averages', needsCli, async (t) => {
  const model = join(dir, 'simcsepp-demo')
  const sts = join(dir, 'sts.tsv')
  writeFileSync(
    sts,
    Array.from({ length: 20 }, (_, i) =>
      ['g', 'f', 'y', String(i), String(i % 5), WORDS[i % WORDS.length], `${WORDS[(i * 3) % WORDS.length]} ${WORDS[i % 7]}`].join('\t'),
    ).join('\n') + '\n',
  )
  const r = JSON.parse(
    execFileSync(process.execPath, [cli, 'eval', '--model', model, '--sts', sts, '--json', '--device', 'cpu'], { encoding: 'utf8' }),
  )
  t.same(Object.keys(r), ['results', 'average', 'averagePearson'])
  t.same(Object.keys(r.results[0]), ['file', 'pairs', 'spearman', 'pearson'])
  t.equal(r.average, r.results[0].spearman)
  t.equal(r.averagePearson, r.results[0].pearson)
  t.ok(Number.isFinite(r.results[0].pearson) && r.results[0].pearson !== r.results[0].spearman)
  const table = execFileSync(process.execPath, [cli, 'eval', '--model', model, '--sts', sts, '--device', 'cpu'], { encoding: 'utf8' })
  t.match(table, /^file\s+pairs\s+Spearman\s+Pearson\n/)
})

t.test("the README's quantization example runs: ubinary and int8 widths, a binary search's hits", needsCli, async (t) => {
  const model = join(dir, 'simcsepp-demo')
  const code = readmeBlock('### Quantized vectors: int8 and binary')
  const script = join(dir, 'quantize-example.mjs')
  writeFileSync(script, code.replace("from 'simcsepp'", `from ${JSON.stringify(dist)}`).replace("'simcsepp-demo'", JSON.stringify(model)))
  const out = execFileSync(process.execPath, [script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }).trim()
  const [bits, int8, indices] = out.split(' ')
  t.equal(Number(bits), 16, '128 dimensions: 16 bytes of signs')
  t.equal(Number(int8), 128, 'a byte per dimension')
  t.equal(indices.split(',').length, 2, 'topK 2')
})
