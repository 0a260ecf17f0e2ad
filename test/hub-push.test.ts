// pushToHub and `simcsepp push` (lib/hub/hub-push.ts) against a local stand-in for the Hugging Face Hub that speaks
// the upload protocol of huggingface_hub's upload_folder: repository creation, preupload (each file's mode), the
// git-lfs batch API with single and multipart uploads to a separate storage and their verification, and the
// newline-delimited JSON commit. The stand-in also serves what was committed the way the Hub serves downloads, so a
// pushed model is loaded back by its id: the round trip must give the folder's vectors bit for bit.
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pushToHub } from '../lib/hub/hub-push.js'
import { SentenceEncoder } from '../lib/embed/sentence-encoder.js'
import { LOCK_FILE } from '../lib/train/run-lock.js'
import { cardForRepo } from '../lib/train/model-card.js'
import { saveTinyModel, sentences, writePoolingConfig } from './helpers/encoder-tiny-model.js'
import { filesOf, gitBlobId, sha256, runCli } from './helpers/hub-files.js'
import { needsCli, tinyTrainArgs, writeSentences } from './helpers/train-corpus.js'

const work = mkdtempSync(join(tmpdir(), 'simcsepp-push-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))
const WRITE = 'hf_write'
const READ = 'hf_read'

interface Commit {
  sha: string
  summary: string
  files: Map<string, { bytes: Buffer; lfs: boolean }>
}
interface Repo {
  private: boolean
  /** main's commits, oldest first; `branches`: the other branches', each starting with main's when it was made. */
  commits: Commit[]
  branches: Map<string, Commit[]>
}
interface Request {
  method: string
  path: string
  auth?: string
}

/** The stand-in: the Hub's API on one port, its LFS storage under /storage on the same server. */
interface StandIn {
  url: string
  repos: Map<string, Repo>
  /** Objects the storage holds, by sha256. */
  lfs: Map<string, Buffer>
  requests: Request[]
  /** Files larger than this are uploaded in parts of `chunkSize` bytes. */
  multipartAbove: number
  chunkSize: number
  /** Files the repository ignores (preupload's shouldIgnore). */
  ignore: Set<string>
  /** Part PUTs answer with this status (a storage failure). */
  partStatus?: number
  /** The batch API refuses the object of this sha256. */
  refuseOid?: string
  /** Branch deletions answer 500. */
  refuseBranchDelete?: boolean
  /** Commits answer with this status (a refusal, 4xx, or a server error, 5xx), committing nothing. */
  commitStatus?: number
  /** The samples preupload received, by path (checked against what is committed). */
  samples: Map<string, string>
  close(): Promise<void>
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of req) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

async function standIn(): Promise<StandIn> {
  const hub: Partial<StandIn> = {
    repos: new Map(),
    lfs: new Map(),
    requests: [],
    multipartAbove: Infinity,
    chunkSize: 1 << 20,
    ignore: new Set(),
    samples: new Map(),
  }
  const parts = new Map<string, Buffer>() // `${oid}/${n}`
  const json = (res: ServerResponse, status: number, v: unknown) =>
    void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v))
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://x')
    const path = decodeURIComponent(url.pathname)
    const auth = req.headers.authorization
    hub.requests!.push({ method: req.method!, path, auth })
    const data = await body(req)
    const token = auth?.replace(/^Bearer /, '')
    const mayWrite = () => token === WRITE
    let m: RegExpExecArray | null
    // The storage: signed URLs, no token expected; lengths announced (S3 refuses chunked uploads).
    if (path.startsWith('/storage/')) {
      if (req.method === 'PUT' && req.headers['content-length'] === undefined) return void res.writeHead(411).end()
      if ((m = /^\/storage\/put\/([0-9a-f]{64})$/.exec(path)) && req.method === 'PUT') {
        if (sha256(data) !== m[1]) return void res.writeHead(400).end('sha256 mismatch')
        hub.lfs!.set(m[1], data)
        return void res.writeHead(200, { etag: '"whole"' }).end()
      }
      if ((m = /^\/storage\/part\/([0-9a-f]{64})\/(\d+)$/.exec(path)) && req.method === 'PUT') {
        if (hub.partStatus) return void res.writeHead(hub.partStatus).end()
        parts.set(`${m[1]}/${m[2]}`, data)
        return void res.writeHead(200, { etag: `"${sha256(data).slice(0, 16)}"` }).end()
      }
      if ((m = /^\/storage\/complete\/([0-9a-f]{64})$/.exec(path)) && req.method === 'POST') {
        const done = JSON.parse(data.toString()) as { oid: string; parts: { partNumber: number; etag: string }[] }
        const chunks = done.parts.map((p, i) => {
          const b = parts.get(`${m![1]}/${p.partNumber}`)
          return p.partNumber === i + 1 && b && p.etag === `"${sha256(b).slice(0, 16)}"` ? b : null
        })
        if (done.oid !== m[1] || chunks.some((c) => c === null)) return void res.writeHead(400).end('bad parts')
        const whole = Buffer.concat(chunks as Buffer[])
        if (sha256(whole) !== m[1]) return void res.writeHead(400).end('sha256 mismatch')
        hub.lfs!.set(m[1], whole)
        return void res.writeHead(200).end()
      }
      return void res.writeHead(404).end()
    }
    if (path === '/storage-verify' && req.method === 'POST') {
      const v = JSON.parse(data.toString()) as { oid: string; size: number }
      return void res.writeHead(hub.lfs!.get(v.oid)?.length === v.size ? 200 : 404).end()
    }
    if (path === '/api/repos/create' && req.method === 'POST') {
      if (!token || (token !== WRITE && token !== READ)) return void res.writeHead(401).end('Invalid credentials')
      if (!mayWrite()) return void res.writeHead(403).end('You do not have write access')
      const v = JSON.parse(data.toString()) as { name: string; organization: string; type?: string; visibility?: string }
      const id = `${v.organization}/${v.name}`
      if (v.type !== undefined && v.type !== 'model') return void res.writeHead(400).end('type')
      if (v.visibility !== undefined && !['public', 'private'].includes(v.visibility)) return void res.writeHead(400).end('visibility')
      if (hub.repos!.has(id)) return void res.writeHead(409).end('You already created this model repo')
      hub.repos!.set(id, { private: v.visibility === 'private', commits: [], branches: new Map() })
      return json(res, 200, { url: `${hub.url}/${id}` })
    }
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/(preupload|commit)\/(.+)$/.exec(path)) && req.method === 'POST') {
      const repo = hub.repos!.get(m[1])
      if (!repo) return void res.writeHead(404).end('Repository not found')
      if (!mayWrite()) return void res.writeHead(token === READ ? 403 : 401).end()
      const commits = m[3] === 'main' ? repo.commits : repo.branches.get(m[3])
      if (!commits) return void res.writeHead(404).end('Invalid rev id')
      if (m[2] === 'preupload') {
        const v = JSON.parse(data.toString()) as { files: { path: string; size: number; sample: string }[] }
        for (const f of v.files) hub.samples!.set(f.path, f.sample)
        return json(res, 200, {
          files: v.files.map((f) => ({
            path: f.path,
            uploadMode: f.path.endsWith('.safetensors') || f.size > 10_000 ? 'lfs' : 'regular',
            shouldIgnore: hub.ignore!.has(f.path),
          })),
        })
      }
      if (req.headers['content-type'] !== 'application/x-ndjson') return void res.writeHead(415).end()
      const lines = data
        .toString()
        .split('\n')
        .filter((l) => l)
        .map((l) => JSON.parse(l) as { key: string; value: Record<string, unknown> })
      if (lines[0]?.key !== 'header') return void res.writeHead(400).end('no header')
      if (hub.commitStatus) return void res.writeHead(hub.commitStatus).end('A commit refused')
      const files = new Map(commits.at(-1)?.files ?? [])
      for (const { key, value } of lines.slice(1)) {
        if (key === 'file' && value.encoding === 'base64') {
          files.set(value.path as string, { bytes: Buffer.from(value.content as string, 'base64'), lfs: false })
        } else if (key === 'lfsFile' && value.algo === 'sha256') {
          const b = hub.lfs!.get(value.oid as string)
          if (!b || b.length !== value.size) return void res.writeHead(422).end(`${value.path as string}: LFS object missing`)
          files.set(value.path as string, { bytes: b, lfs: true })
        } else return void res.writeHead(400).end(`unknown key ${key}`)
      }
      const sha = createHash('sha1').update(data).update(m[3]).update(String(commits.length)).digest('hex')
      commits.push({ sha, summary: String(lines[0].value.summary), files })
      return json(res, 200, { commitOid: sha, commitUrl: `${hub.url}/${m[1]}/commit/${sha}` })
    }
    // A branch made from main's head (huggingface_hub's create_branch); 409 where the name is taken.
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/branch\/(.+)$/.exec(path)) && req.method === 'POST') {
      const repo = hub.repos!.get(m[1])
      if (!repo) return void res.writeHead(404).end('Repository not found')
      if (!mayWrite()) return void res.writeHead(token === READ ? 403 : 401).end()
      if (typeof JSON.parse(data.toString() || 'null') !== 'object') return void res.writeHead(400).end('a JSON object')
      if (m[2] === 'main' || repo.branches.has(m[2])) return void res.writeHead(409).end('Reference already exists')
      repo.branches.set(m[2], [...repo.commits])
      return void res.writeHead(200).end()
    }
    // A branch deleted (huggingface_hub's delete_branch); main cannot be.
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/branch\/(.+)$/.exec(path)) && req.method === 'DELETE') {
      const repo = hub.repos!.get(m[1])
      if (!repo || !repo.branches.has(m[2])) return void res.writeHead(404).end('Reference not found')
      if (!mayWrite()) return void res.writeHead(token === READ ? 403 : 401).end()
      if (hub.refuseBranchDelete) return void res.writeHead(500).end('Internal Error')
      repo.branches.delete(m[2])
      return void res.writeHead(200).end()
    }
    if ((m = /^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/.exec(path)) && req.method === 'POST') {
      if (!hub.repos!.has(m[1])) return void res.writeHead(404).end()
      if (!mayWrite()) return void res.writeHead(403).end()
      if (req.headers.accept !== 'application/vnd.git-lfs+json') return void res.writeHead(406).end()
      const v = JSON.parse(data.toString()) as { operation: string; objects: { oid: string; size: number }[]; hash_algo: string }
      if (v.operation !== 'upload' || v.hash_algo !== 'sha256') return void res.writeHead(400).end()
      return json(res, 200, {
        transfer: 'basic',
        objects: v.objects.map(({ oid, size }) => {
          if (oid === hub.refuseOid) return { oid, size, error: { code: 422, message: 'Object too large' } }
          if (hub.lfs!.has(oid)) return { oid, size }
          const verify = { href: `${hub.url}/storage-verify` }
          if (size <= hub.multipartAbove!) return { oid, size, actions: { upload: { href: `${hub.url}/storage/put/${oid}` }, verify } }
          const header: Record<string, string> = { chunk_size: String(hub.chunkSize) }
          for (let p = 1; p <= Math.ceil(size / hub.chunkSize!); p++)
            header[String(p).padStart(5, '0')] = `${hub.url}/storage/part/${oid}/${p}`
          return { oid, size, actions: { upload: { href: `${hub.url}/storage/complete/${oid}`, header }, verify } }
        }),
      })
    }
    // Downloads, as hub-model.ts reads them: the revision API and resolve URLs.
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(path))) {
      const repo = hub.repos!.get(m[1])
      const commit = (m[2] === 'main' ? repo?.commits : repo?.branches.get(m[2]))?.at(-1)
      if (!commit) return void res.writeHead(404).end()
      const siblings = [...commit.files].map(([rfilename, f]) =>
        f.lfs
          ? {
              rfilename,
              size: f.bytes.length,
              blobId: gitBlobId(Buffer.from('pointer')),
              lfs: { sha256: sha256(f.bytes), size: f.bytes.length },
            }
          : { rfilename, size: f.bytes.length, blobId: gitBlobId(f.bytes) },
      )
      return json(res, 200, { sha: commit.sha, siblings })
    }
    if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([0-9a-f]{40})\/(.+)$/.exec(path))) {
      const repo = hub.repos!.get(m[1])
      const f = [...(repo?.commits ?? []), ...[...(repo?.branches.values() ?? [])].flat()].find((c) => c.sha === m![2])?.files.get(m[3])
      if (!f) return void res.writeHead(404).end()
      return void res.writeHead(200, { 'content-length': f.bytes.length }).end(f.bytes)
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  hub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  hub.close = () => new Promise<void>((r) => server.close(() => r()))
  return hub as StandIn
}

const hub = await standIn()
t.teardown(() => hub.close())
const env = { HF_ENDPOINT: hub.url, HF_TOKEN: WRITE, HF_HUB_CACHE: join(work, 'cache') }
Object.assign(process.env, env) // SentenceEncoder.load reads the environment

// A tiny BERT with mean pooling, its weights in two shards, so that both LFS paths run: the larger file in parts.
const modelDir = await saveTinyModel({ dir: join(work, 'model'), pooling: 'mean' })
writePoolingConfig(modelDir, 'mean')
const weights = readFileSync(join(modelDir, 'model.safetensors'))
hub.multipartAbove = weights.length - 1
hub.chunkSize = Math.ceil(weights.length / 3) // three parts, the last shorter
writeFileSync(join(modelDir, 'notes.safetensors'), Buffer.from('a small LFS file, sent in one PUT'))
mkdirSync(join(modelDir, '1_Pooling'), { recursive: true })
const published = filesOf(modelDir)

t.test('pushToHub: one commit holding the folder byte for byte, LFS files through the storage', async (t) => {
  hub.requests.length = 0
  const progress: { file: string; bytes: number; total: number }[] = []
  const r = await pushToHub(modelDir, 'me/tiny', { env, private: true, onProgress: (p) => progress.push(p) })
  const repo = hub.repos.get('me/tiny')!
  t.ok(repo, 'the repository was created')
  t.equal(repo.private, true, 'private, as asked')
  t.equal(repo.commits.length, 1)
  t.equal(r.commit, repo.commits[0].sha)
  t.equal(r.url, `${hub.url}/me/tiny/commit/${r.commit}`)
  t.equal(repo.commits[0].summary, 'Upload model with simcsepp')
  const committed = repo.commits[0].files
  t.same([...committed.keys()].sort(), [...published.keys()].sort(), 'every file of the folder')
  for (const [path, bytes] of published) t.ok(committed.get(path)?.bytes.equals(bytes), `${path}: the same bytes`)
  t.same(
    r.files.filter((f) => f.lfs).map((f) => f.path),
    ['model.safetensors', 'notes.safetensors'],
    'the safetensors files went to the LFS storage',
  )
  t.equal(r.uploadedBytes, weights.length + published.get('notes.safetensors')!.length)
  t.same(
    r.files.map((f) => [f.path, f.size]),
    [...published].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, b]) => [p, b.length]),
    'sizes, in path order',
  )
  for (const [path, sample] of hub.samples)
    t.equal(sample, published.get(path)!.subarray(0, 512).toString('base64'), `${path}: preupload's sample is its first 512 bytes`)
  const parts = hub.requests.filter((q) => q.path.startsWith('/storage/part/'))
  t.equal(parts.length, 3, 'model.safetensors in three parts')
  t.ok(
    hub.requests.filter((q) => q.path.startsWith('/storage/')).every((q) => q.auth === undefined),
    'no token sent to the storage',
  )
  t.ok(
    hub.requests.filter((q) => !q.path.startsWith('/storage/')).every((q) => q.auth === `Bearer ${WRITE}`),
    'the token sent to the Hub (the verify action included)',
  )
  const model = progress.filter((p) => p.file === 'model.safetensors')
  t.same([model[0].bytes, model.at(-1)!.bytes], [0, weights.length], 'progress from 0 to every byte')
})

/** Asserts that the model loaded by the Hub id `ref` gives the vectors of the folder pushed, bit for bit. */
async function givesFolderVectors(t: Test, ref: string, count: number) {
  const texts = sentences(count)
  const local = await SentenceEncoder.load(modelDir, { device: 'cpu' })
  const pushed = await SentenceEncoder.load(ref, { device: 'cpu' })
  t.teardown(async () => {
    await local.close()
    await pushed.close()
  })
  t.same(
    (await pushed.encode(texts)).map((v) => Array.from(v)),
    (await local.encode(texts)).map((v) => Array.from(v)),
    `${ref}: the folder's vectors`,
  )
}

t.test("SentenceEncoder.load('me/tiny'): the pushed model gives the folder's vectors bit for bit", (t) =>
  givesFolderVectors(t, 'me/tiny', 7),
)

t.test('pushed again: a new commit, no LFS bytes sent again; a changed file is', async (t) => {
  hub.requests.length = 0
  const again = await pushToHub(modelDir, 'me/tiny', { env, message: 'again' })
  t.equal(again.uploadedBytes, 0, 'the storage holds every object already')
  t.equal(hub.requests.filter((q) => q.method === 'PUT').length, 0, 'no PUT')
  const repo = hub.repos.get('me/tiny')!
  t.equal(repo.commits.length, 2)
  t.equal(repo.commits[1].summary, 'again')
  const changed = join(work, 'changed')
  cpSync(modelDir, changed, { recursive: true })
  writeFileSync(join(changed, 'notes.safetensors'), Buffer.from('changed notes'))
  const third = await pushToHub(changed, 'me/tiny', { env })
  t.equal(third.uploadedBytes, 'changed notes'.length, 'only the changed LFS file is sent')
  t.equal(repo.commits[2].files.get('notes.safetensors')?.bytes.toString(), 'changed notes')
})

t.test('--revision: a branch made from main where it does not exist, then committed to; main untouched', async (t) => {
  const repo = hub.repos.get('me/tiny')!
  const mainHead = repo.commits.at(-1)!
  const mainCount = repo.commits.length
  hub.requests.length = 0
  const changed = join(work, 'for-v2')
  cpSync(modelDir, changed, { recursive: true })
  writeFileSync(join(changed, 'notes.safetensors'), Buffer.from('notes of v2'))
  const first = await pushToHub(changed, 'me/tiny', { env, revision: 'v2', message: 'v2' })
  t.same(
    hub.requests.filter((q) => q.method === 'POST').map((q) => q.path.replace(/^\/me\/tiny\.git.*/, 'lfs batch')),
    [
      '/api/repos/create',
      '/api/models/me/tiny/branch/v2',
      '/api/models/me/tiny/preupload/v2',
      'lfs batch',
      '/storage-verify',
      '/api/models/me/tiny/commit/v2',
    ],
    'the branch is made before anything is uploaded to it',
  )
  const v2 = repo.branches.get('v2')!
  t.equal(v2.length, mainCount + 1, "main's history, then the commit")
  t.equal(v2.at(-2), mainHead, "made from main's head")
  t.equal(first.commit, v2.at(-1)!.sha)
  t.equal(v2.at(-1)!.files.get('notes.safetensors')?.bytes.toString(), 'notes of v2')
  t.equal(repo.commits.length, mainCount, 'main has no new commit')
  t.equal(repo.commits.at(-1), mainHead)
  // Pushed again: the branch exists (409, fine), the commit goes on it.
  const second = await pushToHub(modelDir, 'me/tiny', { env, revision: 'v2', message: 'v2 again' })
  t.equal(v2.length, mainCount + 2)
  t.equal(second.commit, v2.at(-1)!.sha)
  t.ok(v2.at(-1)!.files.get('notes.safetensors')?.bytes.equals(published.get('notes.safetensors')!), 'the folder as it is')
  t.equal(repo.commits.length, mainCount, 'main still has no new commit')
  // A new repository: created, then its branch.
  await pushToHub(modelDir, 'me/branched', { env, revision: 'dev' })
  t.equal(hub.repos.get('me/branched')!.commits.length, 0, 'nothing on main')
  t.equal(hub.repos.get('me/branched')!.branches.get('dev')!.length, 1, 'one commit on dev')
  // A pull request's ref is committed to as it is: no branch is made for it.
  hub.requests.length = 0
  await t.rejects(pushToHub(modelDir, 'me/tiny', { env, revision: 'refs/pr/1' }), /asking how to upload the files: HTTP 404/)
  t.notOk(
    hub.requests.some((q) => q.path.includes('/branch/')),
    'no branch request for refs/pr/1',
  )
  await givesFolderVectors(t, 'me/tiny@v2', 3) // the branch, loaded by the id's @revision
})

t.test("a training run's folder: pushed without run/ and hidden files; refused while a training writes it", async (t) => {
  const runDir = join(work, 'run-out')
  cpSync(modelDir, runDir, { recursive: true })
  mkdirSync(join(runDir, 'run', 'checkpoints'), { recursive: true })
  writeFileSync(join(runDir, 'run', 'state.json'), '{}')
  writeFileSync(join(runDir, 'run', 'checkpoints', 'step-10.safetensors'), 'optimizer state')
  mkdirSync(join(runDir, '.git'))
  writeFileSync(join(runDir, '.git', 'HEAD'), 'ref: refs/heads/main')
  writeFileSync(join(runDir, 'model.safetensors.123.incomplete'), 'partial')
  // The lock of a process that is gone: stale, the folder may be pushed.
  const lock = (pid: number) => JSON.stringify({ pid, host: hostname(), started: '2026-12-06T07:00:00Z', command: 'train' })
  writeFileSync(join(runDir, LOCK_FILE), lock(2 ** 30))
  const r = await pushToHub(runDir, 'me/run', { env })
  t.equal(hub.repos.get('me/run')!.private, false, 'public unless asked')
  t.same(
    r.files.map((f) => f.path),
    [...published.keys()].sort(),
    'the model files alone',
  )
  // A live process holds it (this test's parent): refused, nothing sent.
  writeFileSync(join(runDir, LOCK_FILE), lock(process.ppid))
  const before = hub.requests.length
  await t.rejects(
    pushToHub(runDir, 'me/run', { env }),
    /push: a training is writing .*run-out \(pid \d+, started 2026-12-06T07:00:00Z\); push it once the training has ended/,
  )
  t.equal(hub.requests.length, before, 'no request made')
})

t.test('refusals: what is wrong and what to do, before anything is sent where it can be', async (t) => {
  const before = hub.requests.length
  const noToken = { HF_ENDPOINT: hub.url, HF_HOME: join(work, 'no-home') }
  await t.rejects(pushToHub(modelDir, 'me/x', { env: noToken }), /push: the Hub needs a token with write access: set HF_TOKEN/)
  await t.rejects(pushToHub(modelDir, 'tiny', { env }), /push: repository "tiny" is not 'namespace\/name'/)
  await t.rejects(pushToHub(modelDir, 'me/../x', { env }), /is not 'namespace\/name'/)
  await t.rejects(pushToHub(work, 'me/x', { env }), /push: .* is not a model folder \(it has no config.json\)/)
  await t.rejects(pushToHub(modelDir, 'me/x', { env, revision: '../main' }), /revision "\.\.\/main" is not a branch name/)
  t.equal(hub.requests.length, before, 'no request made')
  // The saved token (huggingface-cli login's file) is used where HF_TOKEN is not set.
  mkdirSync(join(work, 'home'), { recursive: true })
  writeFileSync(join(work, 'home', 'token'), `${READ}\n`)
  await t.rejects(
    pushToHub(modelDir, 'me/tiny', { env: { HF_ENDPOINT: hub.url, HF_HOME: join(work, 'home') } }),
    /push: me\/tiny: asking how to upload the files: HTTP 403: the token may not write to 'me\/tiny'/,
  )
  t.equal(hub.requests.at(-1)?.auth, `Bearer ${READ}`, 'the saved token was sent')
  await t.rejects(pushToHub(modelDir, 'me/y', { env, token: 'hf_bogus' }), /creating the repository: HTTP 401: the token was refused/)
  // The Hub unreachable.
  const closed = createServer()
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
  const port = (closed.address() as AddressInfo).port
  await new Promise<void>((r) => closed.close(() => r()))
  await t.rejects(
    pushToHub(modelDir, 'me/x', { env: { HF_TOKEN: WRITE, HF_ENDPOINT: `http://127.0.0.1:${port}` } }),
    /push: me\/x: the Hugging Face Hub could not be reached \(.*ECONNREFUSED\); check the network/,
  )
})

t.test('storage failures: named with the file; the next push completes', async (t) => {
  const dir = join(work, 'fresh')
  cpSync(modelDir, dir, { recursive: true })
  const fresh = Buffer.concat([weights, Buffer.from('another model')])
  writeFileSync(join(dir, 'model.safetensors'), fresh)
  hub.partStatus = 503
  try {
    await t.rejects(
      pushToHub(dir, 'me/fresh', { env }),
      /push: me\/fresh: model.safetensors: uploading bytes 0-\d+ failed \(HTTP 503\); run again/,
    )
  } finally {
    hub.partStatus = undefined
  }
  t.equal(hub.repos.get('me/fresh')!.commits.length, 0, 'no commit')
  hub.refuseOid = sha256(fresh)
  try {
    await t.rejects(pushToHub(dir, 'me/fresh', { env }), /model.safetensors: the LFS storage refused it \(422: Object too large\)/)
  } finally {
    hub.refuseOid = undefined
  }
  const r = await pushToHub(dir, 'me/fresh', { env })
  t.ok(hub.repos.get('me/fresh')!.commits[0].files.get('model.safetensors')?.bytes.equals(fresh), 'pushed whole')
  t.equal(r.files.length, published.size)
})

t.test('a push to a new branch that fails before its commit deletes the branch it made', async (t) => {
  const dir = join(work, 'branch-fail')
  cpSync(modelDir, dir, { recursive: true })
  const bytes = Buffer.concat([weights, Buffer.from('a branch model')])
  writeFileSync(join(dir, 'model.safetensors'), bytes)
  await pushToHub(dir, 'me/branchy', { env }) // main, so that the repository exists
  const repo = hub.repos.get('me/branchy')!
  writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([bytes, Buffer.from('v2')]))
  hub.partStatus = 503
  try {
    await t.rejects(pushToHub(dir, 'me/branchy', { env, revision: 'exp' }), /model.safetensors: uploading bytes 0-\d+ failed \(HTTP 503\)/)
    t.notOk(repo.branches.has('exp'), 'the branch it made is gone')
    t.ok(
      hub.requests.some((q) => q.method === 'DELETE' && q.path === '/api/models/me/branchy/branch/exp'),
      'deleted as huggingface_hub does',
    )
    // A branch that existed before the push is left as it is.
    repo.branches.set('kept', [...repo.commits])
    await t.rejects(pushToHub(dir, 'me/branchy', { env, revision: 'kept' }), /HTTP 503/)
    t.equal(repo.branches.get('kept')!.length, 1, 'not deleted: this push did not make it')
    // Where the deletion fails too, the push's error says the branch was left.
    hub.refuseBranchDelete = true
    await t.rejects(
      pushToHub(dir, 'me/branchy', { env, revision: 'exp2' }),
      /HTTP 503.*\(the branch 'exp2' made for this push was left: push: me\/branchy: deleting the branch 'exp2': HTTP 500/,
    )
  } finally {
    hub.partStatus = undefined
    hub.refuseBranchDelete = undefined
  }
  // The next push makes the branch again and commits to it.
  await pushToHub(dir, 'me/branchy', { env, revision: 'exp' })
  t.equal(repo.branches.get('exp')!.length, 2, "main's commit, then this one")
})

t.test('a commit the Hub refuses (4xx) deletes the branch the push made; after a server error (5xx) it is kept', async (t) => {
  const dir = join(work, 'branch-refused')
  cpSync(modelDir, dir, { recursive: true })
  await pushToHub(dir, 'me/refused', { env }) // main, so that the repository exists
  const repo = hub.repos.get('me/refused')!
  try {
    hub.commitStatus = 422
    await t.rejects(pushToHub(dir, 'me/refused', { env, revision: 'exp' }), /the commit: HTTP 422: A commit refused/)
    t.notOk(repo.branches.has('exp'), 'the branch it made is gone')
    t.ok(hub.requests.some((q) => q.method === 'DELETE' && q.path === '/api/models/me/refused/branch/exp'))
    hub.commitStatus = 502
    await t.rejects(pushToHub(dir, 'me/refused', { env, revision: 'exp' }), /the commit: HTTP 502/)
    t.ok(repo.branches.has('exp'), 'kept: a server error may have committed')
  } finally {
    hub.commitStatus = undefined
  }
  await pushToHub(dir, 'me/refused', { env, revision: 'exp' })
  t.equal(repo.branches.get('exp')!.length, 2, "main's commit, then this one")
})

t.test('files the repository ignores are not committed', async (t) => {
  hub.ignore.add('notes.safetensors')
  try {
    const r = await pushToHub(modelDir, 'me/ignoring', { env })
    t.notOk(r.files.some((f) => f.path === 'notes.safetensors'))
    t.notOk(hub.repos.get('me/ignoring')!.commits[0].files.has('notes.safetensors'))
  } finally {
    hub.ignore.clear()
  }
})

t.test('simcsepp push: a summary line and the commit; usage errors; train --push-to-hub', needsCli, async (t) => {
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(args, { ...process.env, ...env, ...extra })
  const big = join(work, 'big')
  cpSync(modelDir, big, { recursive: true })
  copyFileSync(join(modelDir, 'model.safetensors'), join(big, 'model.safetensors'))
  writeFileSync(join(big, 'extra.safetensors'), Buffer.alloc(3_000_000, 7)) // a progress bar's worth
  writeFileSync(join(big, 'copy.safetensors'), Buffer.alloc(3_000_000, 7)) // the same bytes: one object, sent once
  const r = await run(['push', '--model', big, '--repo', 'me/cli', '--message', 'from the CLI'])
  t.equal(r.status, 0, r.stderr)
  const repo = hub.repos.get('me/cli')!
  t.match(
    r.stdout,
    new RegExp(
      `^pushed ${published.size + 2} files \\(6\\.\\d MB; 4 as LFS objects, 3\\.\\d MB of them uploaded\\) to me/cli: commit ${repo.commits[0].sha}\\n  ${hub.url}/me/cli/commit/`,
    ),
  )
  t.equal(repo.commits[0].summary, 'from the CLI')
  t.ok(repo.commits[0].files.get('copy.safetensors')?.bytes.equals(Buffer.alloc(3_000_000, 7)), 'the copy committed')
  t.match(r.stderr, /3\/3 MB …?extra\.safetensors/, 'a progress bar for the 3 MB file')
  for (const line of r.stderr.split(/[\r\n]/)) t.ok(line.length <= 80, `fits 80 columns: ${line.length}`)
  const missing = await run(['push', '--model', big])
  t.equal(missing.status, 2)
  t.match(missing.stderr, /push: --repo ORG\/NAME is required/)
  const help = await run(['push', '--help'])
  t.equal(help.status, 0)
  t.ok(help.stdout.startsWith('simcsepp push --model DIR --repo ORG/NAME'))
  const refused = await run(['push', '--model', big, '--repo', 'me/cli'], { HF_TOKEN: '', HF_HOME: join(work, 'no-home') })
  t.equal(refused.status, 1)
  t.match(refused.stderr, /the Hub needs a token with write access/)

  // train --push-to-hub: the run's model pushed once it ends; the token checked before training starts.
  const data = writeSentences(join(work, 'data.txt'), 40)
  const out = join(work, 'trained')
  const noToken = await run([...tinyTrainArgs(data, out, 2), '--push-to-hub', 'me/trained'], {
    HF_TOKEN: '',
    HF_HOME: join(work, 'no-home'),
  })
  t.equal(noToken.status, 2)
  t.match(noToken.stderr, /--push-to-hub needs a token with write access/)
  t.notOk(existsSync(out), 'refused before training')
  const badId = await run([...tinyTrainArgs(data, out, 2), '--push-to-hub', 'trained'])
  t.equal(badId.status, 2)
  t.match(badId.stderr, /--push-to-hub trained: not 'namespace\/name'/)
  const badBranch = await run([...tinyTrainArgs(data, out, 2), '--push-to-hub', 'me/trained@../main'])
  t.equal(badBranch.status, 2)
  t.match(badBranch.stderr, /--push-to-hub me\/trained@\.\.\/main: "\.\.\/main" is not a branch name/)
  t.notOk(existsSync(out), 'refused before training')
  const trained = await run([...tinyTrainArgs(data, out, 2), '--push-to-hub', 'me/trained'])
  t.equal(trained.status, 0, trained.stderr)
  const commit = hub.repos.get('me/trained')?.commits[0]
  t.match(trained.stderr, new RegExp(`pushed to me/trained: commit ${commit?.sha}`))
  const model = [...filesOf(out)].filter(([p]) => !p.startsWith('run/') && !p.startsWith('.'))
  t.ok(model.some(([p]) => p === 'model.safetensors') && model.some(([p]) => p === 'README.md'), 'the model and its card')
  t.same([...commit!.files.keys()].sort(), model.map(([p]) => p).sort(), "the run's model files, without run/")
  for (const [p, b] of model) if (p !== 'README.md') t.ok(commit!.files.get(p)?.bytes.equals(b), `${p}: the same bytes`)
  // The card as pushed: its examples load the model by its id; the rest is the run's card.
  const card = commit!.files.get('README.md')!.bytes.toString()
  const local = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(local, /SentenceTransformer\("path\/to\/trained"\)/, 'the local card keeps its path')
  t.equal(card, cardForRepo(local, 'trained', 'me/trained'))
  t.match(card, /model = SentenceTransformer\("me\/trained"\)\n/)
  t.match(card, /const encoder = await SentenceEncoder\.load\('me\/trained'\)\n/)
  t.notMatch(card, /path\/to\//)
  t.equal(card.split('\n').length, local.split('\n').length, 'no other line changed')
  // ORG/NAME@BRANCH: the run's model pushed to that branch, made from main's head; main keeps its commit.
  const out2 = join(work, 'trained-exp')
  const onBranch = await run([...tinyTrainArgs(data, out2, 2), '--push-to-hub', 'me/trained@exp1'])
  t.equal(onBranch.status, 0, onBranch.stderr)
  const repo2 = hub.repos.get('me/trained')!
  const exp1 = repo2.branches.get('exp1')!
  t.same([repo2.commits.length, exp1.length], [1, 2], "main's one commit, then the run's on exp1")
  t.equal(exp1[0], repo2.commits[0], "exp1 made from main's head")
  t.match(onBranch.stderr, new RegExp(`pushed to me/trained@exp1: commit ${exp1[1].sha}`))
  t.ok(exp1[1].files.get('model.safetensors')?.bytes.equals(readFileSync(join(out2, 'model.safetensors'))), "the run's weights")
  // The card on the branch loads the branch's model in both languages.
  const branchCard = exp1[1].files.get('README.md')!.bytes.toString()
  t.equal(branchCard, cardForRepo(readFileSync(join(out2, 'README.md'), 'utf8'), 'trained-exp', 'me/trained', 'exp1'))
  t.match(branchCard, /model = SentenceTransformer\("me\/trained", revision="exp1"\)\n/)
  t.match(branchCard, /const encoder = await SentenceEncoder\.load\('me\/trained@exp1'\)\n/)
  t.notMatch(branchCard, /path\/to\//)
})
