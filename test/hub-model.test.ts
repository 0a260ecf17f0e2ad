// Hub model ids (lib/hub/hub-model.ts) against a local stand-in for the Hugging Face Hub: its revision API and resolve
// URLs, serving a tiny saved model. The cache must have huggingface_hub's layout, downloads must be checked and
// atomic, the cache must serve later loads (offline, or with the Hub unreachable), and the errors must say what to do.
import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { hubCacheDir, hubIdOf, isHubModelId, resolveModel } from '../lib/hub/hub-model.js'
import { SentenceEncoder } from '../lib/embed/sentence-encoder.js'
import { saveTinyModel, sentences, writePoolingConfig } from './helpers/encoder-tiny-model.js'
import { filesOf, gitBlobId, sha256, runCli } from './helpers/hub-files.js'
import { cli, jsonVectors, needsCli } from './helpers/train-corpus.js'

const COMMIT = 'c0ffee'.padEnd(40, '7')
const work = mkdtempSync(join(tmpdir(), 'simcsepp-hub-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

interface FakeHub {
  url: string
  /** Paths requested, in order. */
  requests: string[]
  /** Authorization headers received. */
  auth: (string | undefined)[]
  /** A file's bytes as served (set to damage a download); a status for every request. */
  served: Map<string, Buffer>
  status?: number
  /** Send this many bytes of a file (its full length announced), then drop the connection. */
  cutAfter?: number
  close(): Promise<void>
}

/** A Hub serving `files` as the model 'org/tiny' at COMMIT; *.safetensors as LFS files. */
async function fakeHub(files: Map<string, Buffer>): Promise<FakeHub> {
  const hub: Partial<FakeHub> = { requests: [], auth: [], served: new Map(files) }
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname)
    hub.requests!.push(path)
    hub.auth!.push(req.headers.authorization)
    if (hub.status) return void res.writeHead(hub.status).end()
    if (['main', 'refs/pr/1', COMMIT].some((r) => path === `/api/models/org/tiny/revision/${r}`)) {
      const siblings = [...files].map(([rfilename, b]) =>
        rfilename.endsWith('.safetensors')
          ? {
              rfilename,
              size: b.length,
              blobId: gitBlobId(Buffer.from('pointer ' + rfilename)),
              lfs: { sha256: sha256(b), size: b.length },
            }
          : { rfilename, size: b.length, blobId: gitBlobId(b) },
      )
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sha: COMMIT, siblings }))
    }
    const prefix = `/org/tiny/resolve/${COMMIT}/`
    const body = path.startsWith(prefix) ? hub.served!.get(path.slice(prefix.length)) : undefined
    if (!body) return void res.writeHead(404).end()
    res.writeHead(200, { 'content-length': body.length })
    if (hub.cutAfter !== undefined && body.length > hub.cutAfter) {
      res.write(body.subarray(0, hub.cutAfter))
      return void setTimeout(() => res.destroy(), 20)
    }
    res.end(body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  hub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  hub.close = () => new Promise<void>((r) => server.close(() => r()))
  return hub as FakeHub
}

// The model: a tiny BERT with mean pooling, plus files a Node loader must not download.
const modelDir = await saveTinyModel({ dir: join(work, 'model'), pooling: 'mean' })
writePoolingConfig(modelDir, 'mean')
const published = filesOf(modelDir)
const extras: [string, Buffer][] = [
  ['onnx/model.onnx', Buffer.from('not for us')],
  ['pytorch_model.bin', Buffer.from('a pickle beside the safetensors')],
  ['tf_model.h5', Buffer.from('TensorFlow')],
]
const hub = await fakeHub(new Map([...published, ...extras]))
t.teardown(() => hub.close())
const cache = join(work, 'cache')
const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache }
Object.assign(process.env, env) // SentenceEncoder.load reads the environment
const repo = join(cache, 'models--org--tiny')

t.test('isHubModelId: org/name and name, with @revision; not paths or existing folders', async (t) => {
  for (const id of ['org/name', 'bert-base-uncased', 'BAAI/bge-small-en-v1.5', 'org/name@v1.0', 'org/name@refs/pr/1'])
    t.ok(isHubModelId(id), id)
  for (const p of ['./model', '/abs/model', 'a/b/c', '../x', 'org/../x', modelDir, '', 'org/name/'])
    t.notOk(isHubModelId(p), JSON.stringify(p))
  t.equal(hubIdOf(`/c/models--BAAI--bge-small-en-v1.5/snapshots/${COMMIT}`), 'BAAI/bge-small-en-v1.5', 'the id of a snapshot folder')
  t.equal(hubIdOf(`/c/models--bert-base-uncased/snapshots/${COMMIT}/`), 'bert-base-uncased')
  t.equal(hubIdOf('/c/models--org--x/snapshots/abc'), null, 'not a commit')
  t.equal(hubIdOf(modelDir), null)
  t.equal(hubCacheDir({ HF_HOME: '/h' }), '/h/hub')
  t.equal(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' }), '/c')
  t.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/huggingface/hub')
})

t.test("SentenceEncoder.load('org/tiny'): downloaded into huggingface_hub's layout, the folder's vectors", async (t) => {
  const texts = sentences(9)
  const local = await SentenceEncoder.load(modelDir, { device: 'cpu' })
  const remote = await SentenceEncoder.load('org/tiny', { device: 'cpu' })
  t.teardown(async () => {
    await local.close()
    await remote.close()
  })
  const [a, b] = [await local.encode(texts), await remote.encode(texts)]
  t.same(
    b.map((v) => Array.from(v)),
    a.map((v) => Array.from(v)),
    'the same vectors, bit for bit',
  )
  t.equal(readFileSync(join(repo, 'refs', 'main'), 'utf8'), COMMIT, 'refs/main names the commit')
  const snapshot = join(repo, 'snapshots', COMMIT)
  t.same([...filesOf(snapshot).keys()].sort(), [...published.keys()].sort(), "the snapshot holds the published files, no other framework's")
  for (const [path, bytes] of published) {
    const link = join(snapshot, path)
    t.ok(lstatSync(link).isSymbolicLink(), `${path} is a link`)
    const etag = path.endsWith('.safetensors') ? sha256(bytes) : gitBlobId(bytes)
    t.equal(readlinkSync(link), relative(join(link, '..'), join(repo, 'blobs', etag)), `${path} -> blobs/${etag.slice(0, 8)}...`)
    t.same(readFileSync(link), bytes, `${path}: the served bytes`)
  }
  t.same(
    readdirSync(join(repo, 'blobs')).filter((f) => f.includes('incomplete')),
    [],
    'no partial download left',
  )
  t.notOk(
    hub.requests.some((p) => /onnx|pytorch_model|\.h5/.test(p)),
    'ONNX, pickle and TF weights were not requested',
  )
})

t.test('a second resolve asks the Hub for the revision only; offline, nothing', async (t) => {
  hub.requests.length = 0
  t.equal(await resolveModel('org/tiny', { env }), join(repo, 'snapshots', COMMIT))
  t.same(hub.requests, ['/api/models/org/tiny/revision/main'], 'one request: the revision, no file')
  hub.requests.length = 0
  t.equal(await resolveModel('org/tiny', { env: { ...env, HF_HUB_OFFLINE: '1' } }), join(repo, 'snapshots', COMMIT))
  t.equal(await resolveModel(`org/tiny@${COMMIT}`, { env, offline: true }), join(repo, 'snapshots', COMMIT), 'a commit as revision')
  t.same(hub.requests, [], 'offline: no request')
  t.equal(await resolveModel('org/tiny@refs/pr/1', { env }), join(repo, 'snapshots', COMMIT), 'a pull request ref')
  t.equal(readFileSync(join(repo, 'refs', 'refs', 'pr', '1'), 'utf8'), COMMIT, 'kept as refs/refs/pr/1, as huggingface_hub keeps it')
  await t.rejects(resolveModel('org/other', { env, offline: true }), /org\/other: not in the Hugging Face cache .*HF_HUB_OFFLINE/)
  await t.rejects(resolveModel('org/tiny', { env, revision: '../../x' }), /revision "\.\.\/\.\.\/x" is not a branch, tag or commit name/)
})

t.test('the Hub unreachable: the cached snapshot, else an Error saying so', async (t) => {
  // A port nothing listens on: one the system gave a server that is closed again.
  const closed = createServer()
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
  const port = (closed.address() as AddressInfo).port
  await new Promise<void>((r) => closed.close(() => r()))
  const down = { HF_ENDPOINT: `http://127.0.0.1:${port}`, HF_HUB_CACHE: cache }
  t.equal(await resolveModel('org/tiny', { env: down }), join(repo, 'snapshots', COMMIT))
  await t.rejects(
    resolveModel('org/other', { env: down }),
    /^org\/other: no folder of that name here, and the Hugging Face Hub could not be reached \(.*ECONNREFUSED\); HF_HUB_OFFLINE=1 uses the cache only$/,
  )
})

t.test('private or missing models: the HTTP status and what to do; the token is sent', async (t) => {
  hub.auth.length = 0
  await t.rejects(resolveModel('org/missing', { env, token: 'hf_secret' }), /HTTP 404: no model 'org\/missing' on the Hub/)
  t.same(hub.auth, ['Bearer hf_secret'], 'Authorization: Bearer <token>')
  hub.status = 401
  try {
    await t.rejects(
      resolveModel('org/tiny', { env: { ...env, HF_HUB_CACHE: join(work, 'cache-401') } }),
      /HTTP 401: 'org\/tiny' is private or gated.*HF_TOKEN/,
    )
  } finally {
    hub.status = undefined
  }
  // A file the revision lists but the Hub does not serve (a gated model's files answer 401 or 403 so).
  const gated = join(work, 'cache-gated')
  hub.served.delete('config.json')
  try {
    await t.rejects(resolveModel('org/tiny', { env, cacheDir: gated }), /^org\/tiny: config\.json: HTTP 404$/)
  } finally {
    hub.served.set('config.json', published.get('config.json')!)
  }
  const home = join(work, 'hf-home')
  mkdirSync(home)
  writeFileSync(join(home, 'token'), 'hf_saved\n')
  hub.auth.length = 0
  await resolveModel('org/tiny', { env: { ...env, HF_HOME: home } })
  t.same(hub.auth[0], 'Bearer hf_saved', 'the token `huggingface-cli login` saved (HF_HOME/token)')
})

t.test('a download cut short or corrupted: an Error, no blob, no partial file; the next run completes it', async (t) => {
  const fresh = join(work, 'cache-damaged')
  const weights = [...published.keys()].find((p) => p.endsWith('.safetensors'))!
  const good = published.get(weights)!
  const blobs = join(fresh, 'models--org--tiny', 'blobs')
  hub.served.set(weights, good.subarray(0, good.length - 100))
  await t.rejects(resolveModel('org/tiny', { env, cacheDir: fresh }), /received \d+ bytes of \d+ \(the download was cut short\)/)
  t.notOk(existsSync(join(blobs, sha256(good))), 'no blob under the real name')
  const damaged = Buffer.from(good)
  damaged[damaged.length - 1] ^= 1
  hub.served.set(weights, damaged)
  await t.rejects(resolveModel('org/tiny', { env, cacheDir: fresh }), /do not have the sha256 the Hub lists/)
  t.same(
    readdirSync(blobs).filter((f) => f.includes('incomplete') || f === sha256(good)),
    [],
    'no partial file, no blob',
  )
  // The connection lost mid-file (the server sends half the body and closes it).
  hub.cutAfter = 100
  try {
    await t.rejects(
      resolveModel('org/tiny', { env, cacheDir: fresh }),
      /^org\/tiny: model\.safetensors: the download failed after \d+ bytes \(.+\); run again$/,
    )
  } finally {
    hub.cutAfter = undefined
  }
  t.same(
    readdirSync(blobs).filter((f) => f.includes('incomplete') || f === sha256(good)),
    [],
    'no partial file, no blob',
  )
  hub.served.set(weights, good)
  const progress: { file: string; bytes: number; total: number }[] = []
  const dir = await resolveModel('org/tiny', { env, cacheDir: fresh, onProgress: (p) => void progress.push(p) })
  t.same(readFileSync(join(dir, weights)), good, 'the next run downloads it whole')
  const mine = progress.filter((p) => p.file === weights)
  t.same(
    [mine[0], mine[mine.length - 1]],
    [
      { file: weights, bytes: 0, total: good.length },
      { file: weights, bytes: good.length, total: good.length },
    ],
    'progress from 0 to every byte',
  )
})

t.test("the CLI: encode --model org/tiny gives the folder's vectors; train --model org/tiny records the snapshot", needsCli, async (t) => {
  const fresh = { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: join(work, 'cache-cli') }
  const run = (args: string[]) => runCli(args, fresh)
  const texts = sentences(3)
  const byId = await run(['encode', '--model', 'org/tiny', '--device', 'cpu', ...texts])
  t.equal(byId.status, 0, byId.stderr)
  const byFolder = await run(['encode', '--model', modelDir, '--device', 'cpu', ...texts])
  t.same(
    jsonVectors(byId.stdout).map((v) => Array.from(v)),
    jsonVectors(byFolder.stdout).map((v) => Array.from(v)),
    'the same vectors',
  )
  const data = join(work, 'train.txt')
  writeFileSync(data, sentences(16).join('\n') + '\n')
  const out = join(work, 'run-from-hub')
  const r = await run([
    'train',
    '--model',
    'org/tiny',
    '--data',
    data,
    '--steps',
    '1',
    '--batch-size',
    '4',
    '--max-len',
    '12',
    '--eval-every',
    '0',
    '--out',
    out,
  ])
  t.equal(r.status, 0, r.stderr.slice(-2000))
  const args = JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8')) as { model: string }
  t.equal(
    args.model,
    join(work, 'cache-cli', 'models--org--tiny', 'snapshots', COMMIT),
    'the run names the snapshot (a resume needs no network)',
  )
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /`org\/tiny` \(/, 'the model card names the base model by its id')
  t.match(card, /^---\n(?:.*\n)*?base_model: org\/tiny\n(?:.*\n)*?---\n/, "and in the front matter's base_model (the Hub's model tree)")
  // serve: the model's name in the APIs is its id, not its snapshot folder's (a commit).
  const serve = spawn(process.execPath, [cli, 'serve', '--model', 'org/tiny', '--device', 'cpu', '--port', '0'], { env: fresh })
  t.teardown(() => void serve.kill('SIGKILL'))
  const url = await new Promise<string>((resolve, reject) => {
    let err = ''
    serve.stderr.on('data', (b: Buffer) => {
      err += b
      const m = /on (http:\/\/\S+)/.exec(err)
      if (m) resolve(m[1])
    })
    serve.on('close', () => reject(new Error(err)))
  })
  const models = await (await fetch(url + '/v1/models')).json()
  t.same(models, { object: 'list', data: [{ id: 'org/tiny', object: 'model', owned_by: 'simcsepp' }] }, 'serve lists it as org/tiny')
})
