// `simcsepp eval --sts-benchmark`: the seven English STS test sets (lib/eval/sts-benchmark.ts) from MTEB's copies on
// the Hub, against a local stand-in for the Hub serving each as test.jsonl.gz: the scores are those of the same files
// read locally, named by their tasks in the table, the JSON and the card (typed by the Hub dataset, split test).
import t from 'tap'
import { createServer, type Server } from 'node:http'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { readStsFile } from '../lib/eval/sts.js'
import { STS_BENCHMARK } from '../lib/eval/sts-benchmark.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'
import { gitBlobId, runCli, sha256 } from './helpers/hub-files.js'
import { needsCli } from './helpers/train-corpus.js'
import { frontMatterOf } from './helpers/yaml.js'

const COMMIT = '5e75e75'.padEnd(40, '0')
const work = mkdtempSync(join(tmpdir(), 'simcsepp-sts-benchmark-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

// Each task's test split: pairs of the helper's sentences with scores 0-5, gzipped JSON Lines as MTEB stores them.
const texts = sentences(200, 11, 12)
const splits = new Map<string, Buffer>()
for (const [k, b] of STS_BENCHMARK.entries()) {
  const rows = Array.from({ length: 24 + k }, (_, i) => ({
    sentence1: texts[(i * 7 + k) % texts.length],
    sentence2: texts[(i * 7 + k + (i % 3)) % texts.length],
    score: (i * 5 + 2 * k) % 6,
  }))
  splits.set(b.id, gzipSync(rows.map((r) => JSON.stringify(r)).join('\n') + '\n'))
}
// (mteb/sickr-sts lacks its file where `broken` is set: the error names it)
let broken = false

const requests: string[] = []
const server: Server = createServer((req, res) => {
  const url = new URL(req.url!, 'http://x')
  const path = decodeURIComponent(url.pathname)
  requests.push(path)
  const api = /^\/api\/datasets\/(mteb\/[^/]+)\/revision\/main$/.exec(path)
  if (api && splits.has(api[1])) {
    const gz = splits.get(api[1])!
    const siblings = [
      { rfilename: 'README.md', size: 4, blobId: gitBlobId(Buffer.from('card')) },
      ...(broken && api[1] === 'mteb/sickr-sts'
        ? []
        : [{ rfilename: 'test.jsonl.gz', size: gz.length, blobId: gitBlobId(gz), lfs: { sha256: sha256(gz), size: gz.length } }]),
    ]
    return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sha: COMMIT, siblings }))
  }
  const file = /^\/datasets\/(mteb\/[^/]+)\/resolve\/([0-9a-f]{40})\/test\.jsonl\.gz$/.exec(path)
  if (file && file[2] === COMMIT && splits.has(file[1])) return void res.writeHead(200).end(splits.get(file[1]))
  res.writeHead(404).end()
})
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
t.teardown(() => new Promise<void>((r) => server.close(() => r())))
const env = { ...process.env, HF_ENDPOINT: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, HF_HUB_CACHE: join(work, 'cache') }

t.test('readStsFile: a gzipped JSON Lines split (MTEB’s test.jsonl.gz)', async (t) => {
  const file = join(work, 'sts12.jsonl.gz')
  writeFileSync(file, splits.get('mteb/sts12-sts')!)
  const pairs = await readStsFile(file)
  t.equal(pairs.length, 24)
  t.same(pairs[1], { s1: texts[7], s2: texts[8], score: 5 })
  const bad = join(work, 'bad.jsonl.gz')
  writeFileSync(bad, gzipSync('{"a": "x", "b": "y"}\n'))
  await t.rejects(readStsFile(bad), /bad\.jsonl\.gz: an STS table needs the columns sentence1, sentence2, score/)
})

t.test('eval --sts-benchmark: the seven test sets from the Hub, by task, as the same files read locally', needsCli, async (t) => {
  const model = await saveTinyModel({ seed: 4 })
  const locals = STS_BENCHMARK.map((b) => {
    const file = join(work, `${b.task}.jsonl.gz`)
    writeFileSync(file, splits.get(b.id)!)
    return file
  })
  const local = await runCli(['eval', '--model', model, '--device', 'cpu', '--json', ...locals], env)
  t.equal(local.status, 0, local.stderr)
  const want = JSON.parse(local.stdout)

  const json = await runCli(['eval', '--model', model, '--device', 'cpu', '--json', '--sts-benchmark'], env)
  t.equal(json.status, 0, json.stderr)
  const got = JSON.parse(json.stdout)
  t.same(
    got.results.map((r: { file: string }) => r.file),
    STS_BENCHMARK.map((b) => b.task),
    'each named by its task',
  )
  t.same(
    got.results.map((r: { spearman: number; pearson: number; pairs: number }) => [r.spearman, r.pearson, r.pairs]),
    want.results.map((r: { spearman: number; pearson: number; pairs: number }) => [r.spearman, r.pearson, r.pairs]),
    'the scores of the same files read locally',
  )
  t.equal(got.average, want.average)
  t.same(got.mean, { datasets: 7, mean: got.mean.mean, taskTypes: 1, meanByTaskType: got.mean.mean })
  t.ok(Math.abs(100 * got.mean.mean - got.average) < 1e-9, 'one task type: both means are the average')
  const downloads = requests.filter((p) => p.includes('/resolve/'))
  t.equal(downloads.length, 7, 'only the test files downloaded')
  t.ok(
    downloads.every((p) => p.endsWith('/test.jsonl.gz')),
    'each test.jsonl.gz',
  )

  const table = await runCli(['eval', '--model', model, '--device', 'cpu', '--sts-benchmark'], env)
  t.equal(table.status, 0, table.stderr)
  for (const [i, b] of STS_BENCHMARK.entries())
    t.match(table.stdout, new RegExp(`\\n${b.task.replace('-', '\\-')} +${want.results[i].pairs} +${want.results[i].spearman.toFixed(2)} `))
  t.equal(requests.filter((p) => p.includes('/resolve/')).length, 7, 'the second run reads the cache')

  // The card: each task typed by its Hub dataset, split test, as MTEB's results are.
  const card = await runCli(['eval', '--model', model, '--device', 'cpu', '--sts-benchmark', '--update-card'], env)
  t.equal(card.status, 0, card.stderr)
  const index = frontMatterOf(readFileSync(join(model, 'README.md'), 'utf8')) as {
    'model-index': { results: { dataset: unknown; metrics: { type: string; value: number }[] }[] }[]
  } | null
  if (index)
    t.same(
      index['model-index'][0].results.map((r) => [r.dataset, r.metrics[1].value]),
      STS_BENCHMARK.map((b, i) => [{ name: b.task, type: b.id, split: 'test' }, want.results[i].spearman / 100]),
    )

  broken = true
  const missing = await runCli(['eval', '--model', model, '--device', 'cpu', '--sts-benchmark'], { ...env, HF_HUB_CACHE: join(work, 'c2') })
  t.equal(missing.status, 1)
  t.match(
    missing.stderr,
    /hf:\/\/datasets\/mteb\/sickr-sts\/test\.jsonl\.gz: no file of the dataset mteb\/sickr-sts at main is at 'test\.jsonl\.gz'/,
  )
  t.equal(missing.stdout, '')
})
