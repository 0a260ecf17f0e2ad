// Hub datasets' files named hf://datasets/ORG/NAME[@REVISION]/PATH (resolveHfPath, lib/hub/hub-model.ts) against a local
// stand-in for the Hugging Face Hub serving a dataset of Parquet shards (the test fixtures): only the files the path
// names are downloaded, into huggingface_hub's cache layout (datasets--org--name/), and a run on them is the run on the
// local files. train(), the CLI's data flags and the errors.
import t from 'tap'
import { createServer, type Server } from 'node:http'
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cachedHubDatasetOf, resolveHfPath, setLabel } from '../lib/hub/hub-model.js'
import type { EvalInfo } from '../lib/train/events.js'
import { PairFile } from '../lib/data/pairs.js'
import { train, type TrainResult } from '../lib/train/train.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'
import { gitBlobId, sha256, runCli } from './helpers/hub-files.js'
import { needsCli, TINY_RUN, tinyTrainArgs } from './helpers/train-corpus.js'

const COMMIT = 'da7a5e7'.padEnd(40, '0')
const work = mkdtempSync(join(tmpdir(), 'simcsepp-hub-data-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))
const fixture = (name: string) => join(process.cwd(), 'test', 'fixtures', 'parquet', name)

// The dataset 'org/nli' at COMMIT: Parquet shards as LFS files, a card and .gitattributes as git blobs.
const files = new Map<string, Buffer>([
  ['.gitattributes', Buffer.from('*.parquet filter=lfs diff=lfs merge=lfs -text\n')],
  ['README.md', Buffer.from('---\nconfigs: [triplet, sentences, stsb]\n---\n')],
  ['triplet/train-00000-of-00002.parquet', readFileSync(fixture('shards/train-00000-of-00002.parquet'))],
  ['triplet/train-00001-of-00002.parquet', readFileSync(fixture('shards/train-00001-of-00002.parquet'))],
  ['triplet/test-00000-of-00001.parquet', readFileSync(fixture('shards/test-00000-of-00001.parquet'))],
  ['sentences/train-00000-of-00002.parquet', readFileSync(fixture('wiki/train-00000-of-00002.parquet'))],
  ['sentences/train-00001-of-00002.parquet', readFileSync(fixture('wiki/train-00001-of-00002.parquet'))],
  ['stsb/validation.parquet', readFileSync(fixture('stsb.parquet'))],
])

const requests: string[] = []
const server: Server = createServer((req, res) => {
  const url = new URL(req.url!, 'http://x')
  const path = decodeURIComponent(url.pathname)
  requests.push(path)
  const revision = /^\/api\/datasets\/org\/nli\/revision\/(.+)$/.exec(path)
  if (revision && ['main', 'refs/pr/1', COMMIT].includes(revision[1]) && url.searchParams.get('blobs') === 'true') {
    const siblings = [...files].map(([rfilename, b]) =>
      rfilename.endsWith('.parquet')
        ? { rfilename, size: b.length, blobId: gitBlobId(Buffer.from(rfilename)), lfs: { sha256: sha256(b), size: b.length } }
        : { rfilename, size: b.length, blobId: gitBlobId(b) },
    )
    return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sha: COMMIT, siblings }))
  }
  const prefix = `/datasets/org/nli/resolve/${COMMIT}/`
  const body = path.startsWith(prefix) ? files.get(path.slice(prefix.length)) : undefined
  if (!body) return void res.writeHead(404).end()
  res.writeHead(200, { 'content-length': body.length }).end(body)
})
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
t.teardown(() => new Promise<void>((r) => server.close(() => r())))
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const cache = join(work, 'cache')
const env = { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache }
Object.assign(process.env, env) // train() reads the environment
const snapshot = join(cache, 'datasets--org--nli', 'snapshots', COMMIT)
const downloads = () =>
  requests.filter((p) => p.startsWith('/datasets/')).map((p) => p.slice(`/datasets/org/nli/resolve/${COMMIT}/`.length))

t.test('a pattern: the files it matches, downloaded into the cache; read as the local shards are', async (t) => {
  requests.length = 0
  const path = await resolveHfPath('hf://datasets/org/nli/triplet/train-*.parquet', { env })
  t.equal(path, join(snapshot, 'triplet', 'train-*.parquet'), "the pattern, in the dataset's snapshot")
  t.same(downloads(), ['triplet/train-00000-of-00002.parquet', 'triplet/train-00001-of-00002.parquet'], 'the two train shards alone')
  t.match(
    readlinkSync(join(snapshot, 'triplet', 'train-00000-of-00002.parquet')),
    new RegExp(`^\\.\\./\\.\\./\\.\\./blobs/${sha256(files.get('triplet/train-00000-of-00002.parquet')!)}$`),
  )
  const pairs = await PairFile.open(path, 'parquet')
  const { anchors, positives } = JSON.parse(readFileSync(fixture('expected.json'), 'utf8')) as { anchors: string[]; positives: string[] }
  t.same(await pairs.readColumns(Array.from({ length: pairs.count }, (_, i) => i)), [anchors, positives], 'the fixture shards')
  requests.length = 0
  t.equal(await resolveHfPath('hf://datasets/org/nli/triplet/train-*.parquet', { env }), path)
  t.same(requests, ['/api/datasets/org/nli/revision/main'], 'again: the revision asked, nothing downloaded')
  t.equal(await resolveHfPath('hf://datasets/org/nli/triplet/train-*.parquet', { env, offline: true }), path, 'offline: the cache')
  t.equal(await resolveHfPath('/a/local/file.parquet'), '/a/local/file.parquet', 'a local path as it is')
})

t.test('a file, a folder, a revision', async (t) => {
  requests.length = 0
  t.equal(await resolveHfPath('hf://datasets/org/nli/stsb/validation.parquet', { env }), join(snapshot, 'stsb', 'validation.parquet'))
  t.same(downloads(), ['stsb/validation.parquet'])
  requests.length = 0
  t.equal(await resolveHfPath('hf://datasets/org/nli/sentences/', { env }), join(snapshot, 'sentences'), 'a folder (a trailing slash)')
  t.same(downloads(), ['sentences/train-00000-of-00002.parquet', 'sentences/train-00001-of-00002.parquet'], 'its files')
  requests.length = 0
  await resolveHfPath('hf://datasets/org/nli@refs%2Fpr%2F1/stsb/validation.parquet', { env })
  t.same(requests, ['/api/datasets/org/nli/revision/refs/pr/1'], 'an encoded revision with slashes')
  t.equal(readFileSync(join(cache, 'datasets--org--nli', 'refs', 'refs', 'pr', '1'), 'utf8'), COMMIT)
  t.notOk(existsSync(join(snapshot, 'README.md')), 'files not named are not downloaded')
})

t.test('refusals: what is wrong and what to do', async (t) => {
  await t.rejects(
    resolveHfPath('hf://org/model/file.txt', { env }),
    /an hf:\/\/ path names files of a Hub dataset: hf:\/\/datasets\/ORG\/NAME\[@REVISION\]\/PATH/,
  )
  await t.rejects(resolveHfPath('hf://datasets/org/nli/../x', { env }), /names files of a Hub dataset/)
  await t.rejects(resolveHfPath('hf://datasets/org/nli@refs%2/x.parquet', { env }), /the revision "refs%2" is not URL-encoded/)
  await t.rejects(
    resolveHfPath('hf://datasets/org/nli/triplet/dev-*.parquet', { env }),
    /no file of the dataset org\/nli at main is matched by 'triplet\/dev-\*\.parquet'/,
  )
  await t.rejects(
    resolveHfPath('hf://datasets/org/nli/nothing.csv', { env }),
    /no file of the dataset org\/nli at main is at 'nothing\.csv'/,
  )
  await t.rejects(
    resolveHfPath('hf://datasets/org/missing/x.parquet', { env }),
    /HTTP 404: no dataset 'org\/missing' on the Hub at that revision$/,
  )
  await t.rejects(
    resolveHfPath('hf://datasets/org/other/x.parquet', { env, offline: true }),
    /not in the Hugging Face cache .*datasets--org--other.*HF_HUB_OFFLINE/,
  )
})

const losses = (r: TrainResult) => r.history.flatMap((e) => ('loss' in e ? [e.loss] : []))
const RUN = { ...TINY_RUN, batchSize: 6, steps: 4, saveEvery: 0 }

t.test('train({ data: hf://... }): the run on the local shards, the snapshot recorded', async (t) => {
  const local = await train({ ...RUN, data: fixture('wiki'), out: join(work, 'local') })
  const hub = await train({ ...RUN, data: 'hf://datasets/org/nli/sentences', out: join(work, 'hub') })
  t.same(losses(hub), losses(local), 'the same losses at every step')
  const args = JSON.parse(readFileSync(join(work, 'hub', 'run', 'training_args.json'), 'utf8'))
  t.equal(args.data, join(snapshot, 'sentences'), 'the snapshot path: a resume needs no network')
})

t.test("a Hub dataset's sets named by the dataset in training's logs and card, not by their copies in the cache", async (t) => {
  const sts = 'hf://datasets/org/nli/stsb/validation.parquet'
  const out = join(work, 'named')
  const evals: EvalInfo[] = []
  await train({ ...RUN, steps: 2, evalEvery: 2, data: fixture('wiki'), evalFiles: [sts], out }, { onEval: (e) => void evals.push(e) })
  t.equal(evals.at(-1)!.results[0].file, join(snapshot, 'stsb', 'validation.parquet'), 'the results record the local copy')
  t.equal(evals.at(-1)!.selection?.set, 'nli/stsb/validation.parquet', "selected by the dataset's name and the path in it")
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /dataset:\n +name: "nli\/stsb\/validation\.parquet"\n +type: "org\/nli"\n/, "the model-index: the dataset's id as its type")
  t.notMatch(card, new RegExp(COMMIT), 'no commit as a name')
  t.same(cachedHubDatasetOf(join(snapshot, 'stsb', 'validation.parquet')), {
    id: 'org/nli',
    path: 'stsb/validation.parquet',
    revision: COMMIT,
  })
  t.same(cachedHubDatasetOf(snapshot + '/'), { id: 'org/nli', path: '', revision: COMMIT })
  t.equal(setLabel(snapshot), 'nli', "a whole dataset's folder by the dataset's name")
  t.equal(setLabel(join(cache, 'datasets--org--nli', 'blobs', 'x')), 'x', 'not a snapshot: its base name')
  t.equal(cachedHubDatasetOf('/data/nli/stsb/validation.parquet'), null)
})

t.test('the CLI: train --data and eval --sts take hf:// paths', needsCli, async (t) => {
  const run = (args: string[]) => runCli(args, { ...process.env, ...env, HF_HUB_CACHE: join(work, 'cli-cache') })
  const model = await saveTinyModel({ seed: 9 })
  const byHub = await run(['eval', '--model', model, '--device', 'cpu', '--sts', 'hf://datasets/org/nli/stsb/validation.parquet', '--json'])
  t.equal(byHub.status, 0, byHub.stderr)
  const byFile = await run(['eval', '--model', model, '--device', 'cpu', '--sts', fixture('stsb.parquet'), '--json'])
  const spearman = (stdout: string) => [...stdout.matchAll(/"spearman":\s*([-\d.e]+)/g)].map((m) => Number(m[1]))
  t.ok(spearman(byHub.stdout).length > 0)
  t.same(spearman(byHub.stdout), spearman(byFile.stdout), 'the same scores as the local file')
  t.equal(JSON.parse(byHub.stdout).results[0].file, 'hf://datasets/org/nli/stsb/validation.parquet', 'the JSON names it as given')
  const table = await run(['eval', '--model', model, '--device', 'cpu', '--sts', 'hf://datasets/org/nli/stsb/validation.parquet'])
  t.equal(table.status, 0, table.stderr)
  t.match(table.stdout, /\nnli\/stsb\/validation\.parquet +\d+ /, "the table by the dataset's name and the path in it")
  t.notMatch(table.stdout, /snapshots|[0-9a-f]{40}/, 'not by its copy in the cache')
  const out = join(work, 'cli-run')
  const trained = await run(tinyTrainArgs('hf://datasets/org/nli/sentences', out, 2))
  t.equal(trained.status, 0, trained.stderr)
  t.equal(
    JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')).data,
    join(work, 'cli-cache', 'datasets--org--nli', 'snapshots', COMMIT, 'sentences'),
  )
  const bad = await run([
    'train',
    '--config',
    'tiny',
    '--steps',
    '1',
    '--data',
    'hf://datasets/org/nli/nope-*.parquet',
    '--out',
    join(work, 'bad'),
  ])
  t.equal(bad.status, 1)
  t.match(bad.stderr, /no file of the dataset org\/nli at main is matched by 'nope-\*\.parquet'/)
})
