// A model folder pushed to the Hugging Face Hub as one commit, the way huggingface_hub's upload_folder does it (its
// HTTP protocol, without git):
//   1. POST {endpoint}/api/repos/create {name, organization[, visibility: 'private']}   (409: it exists, fine)
//      and, for a branch other than main, POST {endpoint}/api/models/{id}/branch/{branch} {} (from main's head; 409: it
//      exists, fine), as `huggingface-cli upload --revision` does (a pull request's refs/pr/N is not created); a branch
//      made here is deleted again (DELETE, as huggingface_hub's delete_branch) when the files' upload fails before the
//      commit is sent, or the Hub refuses the commit (HTTP 4xx: nothing was committed), so that such a failed push
//      leaves no empty branch behind
//   2. POST {endpoint}/api/models/{id}/preupload/{revision} {files: [{path, size, sample}]}: each file's mode,
//      'regular' (sent inside the commit, base64) or 'lfs' (large and binary files), and whether the repo ignores it
//   3. LFS files: POST {endpoint}/{id}.git/info/lfs/objects/batch (the git-lfs batch API, sha256 oids): for each
//      object the storage does not hold yet, an upload action: one PUT of the file to its href, or with a chunk_size
//      one PUT per part to the URLs under the numbered header keys, then a POST of the parts' ETags to the href; then
//      the verify action, if any, gets {oid, size}. Objects the storage holds already are not sent again.
//   4. POST {endpoint}/api/models/{id}/commit/{revision}, newline-delimited JSON: a header {summary, description},
//      then {key: 'file', value: {path, content, encoding: 'base64'}} per regular file and
//      {key: 'lfsFile', value: {path, algo: 'sha256', oid, size}} per LFS file. Files of the repo that the folder
//      lacks are left as they are (as upload_folder leaves them).
// A training run's folder is pushed without its state (run/) and without hidden files (the run lock, .git, ...), and
// not while a training writes it. A token with write access is needed: HF_TOKEN, else the one `huggingface-cli login`
// saved.
import { createHash } from 'node:crypto'
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { basename, join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { cardForRepo } from '../train/model-card.js'
import { runLockHolder } from '../train/run-lock.js'
import { hubEndpoint, hubFetch, hubToken } from './hub-model.js'

export interface PushOptions {
  /** The branch to commit to (default 'main'), created from main where it does not exist yet. */
  revision?: string
  /** Create the repository private, where this push creates it (an existing one keeps its visibility). */
  private?: boolean
  /** The commit's summary (default 'Upload model with simcsepp') and description. */
  message?: string
  description?: string
  /** An access token with write access (default: HF_TOKEN, else the token `huggingface-cli login` saved). */
  token?: string
  /** The Hub's address (default: HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string
  /** Each LFS file as its upload starts, then its bytes as they are sent. */
  onProgress?: (p: { file: string; bytes: number; total: number }) => void
  env?: NodeJS.ProcessEnv
}

export interface PushResult {
  repoId: string
  /** The commit made, and its page on the Hub. */
  commit: string
  url: string
  /** The files committed, in path order; `lfs`: stored as a git LFS object. */
  files: { path: string; size: number; lfs: boolean }[]
  /** Bytes sent to the LFS storage (objects it already held are not sent again). */
  uploadedBytes: number
}

interface LocalFile {
  path: string // in the repository, with '/'
  abs: string
  content?: Buffer // what is pushed, where it differs from the file (the model card, its examples naming the repo)
  size: number
  sha256: string
  sample: Buffer // the first 512 bytes: the Hub tells text from binary by them
  lfs?: boolean
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/
const LFS_HEADERS = { accept: 'application/vnd.git-lfs+json', 'content-type': 'application/vnd.git-lfs+json' }
const UNREACHABLE_HINT = '; check the network (and HF_ENDPOINT)'

/** Whether `repoId` names a repository pushToHub can push to: 'namespace/name'. */
export function isPushableRepoId(repoId: string): boolean {
  return typeof repoId === 'string' && REPO_ID.test(repoId) && !repoId.includes('..')
}

/** Whether `revision` can name a branch to push to: names joined by '/', no '..'. */
export function isBranchName(revision: string): boolean {
  return typeof revision === 'string' && /^[\w.-]+(\/[\w.-]+)*$/.test(revision) && !revision.split('/').includes('..')
}

/** Pushes the model in `dir` to the Hub repository `repoId` ('org/name') as one commit; creates the repository first. */
export async function pushToHub(dir: string, repoId: string, options: PushOptions = {}): Promise<PushResult> {
  const env = options.env ?? process.env
  if (!isPushableRepoId(repoId))
    throw new Error(`push: repository ${JSON.stringify(repoId)} is not 'namespace/name' (your user or organisation, then the model's name)`)
  const revision = options.revision ?? 'main'
  if (!isBranchName(revision)) throw new Error(`push: revision ${JSON.stringify(revision)} is not a branch name`)
  dir = resolve(dir)
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`push: ${dir} is not a model folder (it has no config.json)`)
  const holder = runLockHolder(dir)
  if (holder) throw new Error(`push: a training is writing ${dir} (${holder}); push it once the training has ended`)
  const token = options.token ?? hubToken(env)
  if (!token) throw new Error('push: the Hub needs a token with write access: set HF_TOKEN (or run `huggingface-cli login`)')
  const endpoint = hubEndpoint(options.endpoint, env)
  const auth = { authorization: `Bearer ${token}` }
  const files = await describeFiles(dir, repoId, revision)

  await createRepo(endpoint, repoId, options.private ?? false, auth)
  const rev = encodeURIComponent(revision)
  const made = revision !== 'main' && !/^refs\/pr\/\d+$/.test(revision) && (await createBranch(endpoint, repoId, rev, auth))
  let kept: LocalFile[], uploadedBytes: number
  try {
    kept = await uploadModes(endpoint, repoId, rev, files, auth)
    const lfs = kept.filter((f) => f.lfs)
    uploadedBytes = lfs.length > 0 ? await uploadLfs(endpoint, repoId, revision, lfs, auth, options) : 0
  } catch (e) {
    if (made) await deleteBranch(endpoint, repoId, rev, auth, e as Error)
    throw e
  }

  const lines: object[] = [
    { key: 'header', value: { summary: options.message ?? 'Upload model with simcsepp', description: options.description ?? '' } },
  ]
  for (const f of kept) {
    if (f.lfs) lines.push({ key: 'lfsFile', value: { path: f.path, algo: 'sha256', oid: f.sha256, size: f.size } })
    else
      lines.push({
        key: 'file',
        value: { path: f.path, content: (f.content ?? (await readFile(f.abs))).toString('base64'), encoding: 'base64' },
      })
  }
  const res = await call(`${endpoint}/api/models/${repoId}/commit/${rev}`, 'the commit', repoId, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/x-ndjson' },
    body: lines.map((l) => JSON.stringify(l) + '\n').join(''),
  }).catch(async (e: Error) => {
    // A refusal (4xx) committed nothing; after a lost connection or a server error (5xx) the commit may have been
    // made, so the branch is kept.
    if (made && e instanceof HubHttpError && e.status >= 400 && e.status < 500) await deleteBranch(endpoint, repoId, rev, auth, e)
    throw e
  })
  const done = (await res.json().catch(() => ({}))) as { commitOid?: string; commitUrl?: string }
  if (typeof done.commitOid !== 'string') throw new Error(`push: ${repoId}: the Hub's answer to the commit names no commit`)
  return {
    repoId,
    commit: done.commitOid,
    url: typeof done.commitUrl === 'string' ? done.commitUrl : `${endpoint}/${repoId}/commit/${done.commitOid}`,
    files: kept.map((f) => ({ path: f.path, size: f.size, lfs: !!f.lfs })),
    uploadedBytes,
  }
}

/**
 * The files to push, in path order: all but hidden ones and a training run's state (run/ at the top). The model card
 * (README.md) is pushed with its examples loading the model by `repoId` at `revision`.
 */
async function describeFiles(dir: string, repoId: string, revision: string): Promise<LocalFile[]> {
  const paths: string[] = []
  const walk = (under: string) => {
    for (const e of readdirSync(join(dir, under), { withFileTypes: true })) {
      const path = under ? `${under}/${e.name}` : e.name
      if (e.name.startsWith('.') || path === 'run' || e.name.endsWith('.incomplete')) continue
      const st = statSync(join(dir, path)) // (links followed: a cache snapshot's files are links to its blobs)
      if (st.isDirectory()) walk(path)
      else if (st.isFile()) paths.push(path)
    }
  }
  walk('')
  paths.sort()
  const out: LocalFile[] = []
  for (const path of paths) {
    const abs = join(dir, path)
    if (path === 'README.md') {
      const text = await readFile(abs, 'utf8')
      const card = cardForRepo(text, basename(dir), repoId, revision)
      if (card !== text) {
        const content = Buffer.from(card)
        out.push({ path, abs, content, size: content.length, sha256: sha(content), sample: content.subarray(0, 512) })
        continue
      }
    }
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of createReadStream(abs)) {
      hash.update(chunk as Buffer)
      size += (chunk as Buffer).length
    }
    const fh = await open(abs, 'r')
    const sample = Buffer.alloc(Math.min(512, size))
    await fh.read(sample, 0, sample.length, 0).finally(() => fh.close())
    out.push({ path, abs, size, sha256: hash.digest('hex'), sample })
  }
  return out
}

/** A request to the Hub that must succeed; an Error that says what to do otherwise. */
async function call(url: string, what: string, repoId: string, init: RequestInit, ok = (s: number) => s >= 200 && s < 300) {
  const res = await hubFetch(url, (init.headers ?? {}) as Record<string, string>, init, UNREACHABLE_HINT).catch((e: Error) => {
    throw new Error(`push: ${repoId}: ${e.message}`)
  })
  if (ok(res.status)) return res
  const detail = ((await res.text().catch(() => '')) || '').replace(/\s+/g, ' ').slice(0, 200)
  const why =
    res.status === 401
      ? ': the token was refused (set HF_TOKEN to a valid token)'
      : res.status === 403
        ? `: the token may not write to '${repoId}' (it needs write access to that namespace)`
        : detail
          ? `: ${detail}`
          : ''
  throw new HubHttpError(`push: ${repoId}: ${what}: HTTP ${res.status}${why}`, res.status)
}

/** The Hub's answer to a request was an HTTP error: its status says whether the request may have taken effect. */
class HubHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message)
  }
}

async function createRepo(endpoint: string, repoId: string, isPrivate: boolean, auth: Record<string, string>) {
  const [organization, name] = repoId.split('/')
  // (409: it exists. 403: the token may write to the repository but not create repositories in its namespace; the
  // next request says whether it may write)
  await call(
    `${endpoint}/api/repos/create`,
    'creating the repository',
    repoId,
    {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      // (as huggingface_hub's create_repo sends it: a model repository has no type, visibility only when chosen)
      body: JSON.stringify({ name, organization, ...(isPrivate ? { visibility: 'private' } : {}) }),
    },
    (s) => (s >= 200 && s < 300) || s === 409 || s === 403,
  )
}

/**
 * Creates the branch `rev` (URL-encoded) from main's head; one that exists already is kept as it is. Whether this call
 * made it.
 */
async function createBranch(endpoint: string, repoId: string, rev: string, auth: Record<string, string>): Promise<boolean> {
  const res = await call(
    `${endpoint}/api/models/${repoId}/branch/${rev}`,
    `creating the branch '${decodeURIComponent(rev)}'`,
    repoId,
    { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' },
    (s) => (s >= 200 && s < 300) || s === 409,
  )
  return res.status !== 409
}

/**
 * Deletes the branch `rev` this push made, after `failure` ended the push; where that fails too, `failure`'s message
 * says the branch was left (the push's own error stays the one thrown).
 */
async function deleteBranch(endpoint: string, repoId: string, rev: string, auth: Record<string, string>, failure: Error) {
  try {
    await call(`${endpoint}/api/models/${repoId}/branch/${rev}`, `deleting the branch '${decodeURIComponent(rev)}'`, repoId, {
      method: 'DELETE',
      headers: auth,
    })
  } catch (e) {
    failure.message += ` (the branch '${decodeURIComponent(rev)}' made for this push was left: ${(e as Error).message})`
  }
}

/** Sets each file's `lfs` from the Hub's preupload answer; returns the files the repository does not ignore. */
async function uploadModes(endpoint: string, repoId: string, rev: string, files: LocalFile[], auth: Record<string, string>) {
  const ignored = new Set<string>()
  for (let i = 0; i < files.length; i += 256) {
    const chunk = files.slice(i, i + 256)
    const res = await call(`${endpoint}/api/models/${repoId}/preupload/${rev}`, 'asking how to upload the files', repoId, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ files: chunk.map((f) => ({ path: f.path, size: f.size, sample: f.sample.toString('base64') })) }),
    })
    const body = (await res.json().catch(() => null)) as {
      files?: { path?: unknown; uploadMode?: unknown; shouldIgnore?: unknown }[]
    } | null
    const modes = new Map((body?.files ?? []).map((f) => [f.path, f]))
    for (const f of chunk) {
      const m = modes.get(f.path)
      if (!m || (m.uploadMode !== 'lfs' && m.uploadMode !== 'regular'))
        throw new Error(`push: ${repoId}: the Hub's preupload answer has no upload mode for ${f.path}`)
      f.lfs = m.uploadMode === 'lfs' && f.size > 0 // (empty files go as regular files: the storage refuses them)
      if (m.shouldIgnore === true) ignored.add(f.path)
    }
  }
  return files.filter((f) => !ignored.has(f.path))
}

interface LfsAction {
  href: string
  header?: Record<string, string>
}

/** Uploads the LFS files the storage lacks; returns the bytes sent. */
async function uploadLfs(
  endpoint: string,
  repoId: string,
  revision: string,
  files: LocalFile[],
  auth: Record<string, string>,
  o: PushOptions,
): Promise<number> {
  type Obj = {
    oid?: string
    size?: number
    actions?: { upload?: LfsAction; verify?: LfsAction }
    error?: { code?: number; message?: string }
  }
  // Each content once (two files with the same bytes are one object), asked about 256 at a time as huggingface_hub does.
  const unique = [...new Map(files.map((f) => [f.sha256, f])).values()]
  const objects: Obj[] = []
  for (let i = 0; i < unique.length; i += 256) {
    const res = await call(`${endpoint}/${repoId}.git/info/lfs/objects/batch`, 'the LFS batch request', repoId, {
      method: 'POST',
      headers: { ...auth, ...LFS_HEADERS },
      body: JSON.stringify({
        operation: 'upload',
        transfers: ['basic', 'multipart'],
        objects: unique.slice(i, i + 256).map((f) => ({ oid: f.sha256, size: f.size })),
        hash_algo: 'sha256',
        ref: { name: revision },
      }),
    })
    const answer = ((await res.json().catch(() => null)) as { objects?: Obj[] } | null)?.objects
    if (!Array.isArray(answer)) throw new Error(`push: ${repoId}: the LFS batch answer has no object list`)
    objects.push(...answer)
  }
  let sent = 0
  // (one file at a time: the storage's bandwidth is the limit, and a progress bar per file reads well)
  for (const f of unique) {
    const obj = objects.find((x) => x.oid === f.sha256)
    if (!obj) throw new Error(`push: ${repoId}: the LFS batch answer omits ${f.path}`)
    if (obj.error)
      throw new Error(`push: ${repoId}: ${f.path}: the LFS storage refused it (${obj.error.code ?? '?'}: ${obj.error.message ?? ''})`)
    const upload = obj.actions?.upload
    if (!upload) continue // the storage holds it already
    if (typeof upload.href !== 'string') throw new Error(`push: ${repoId}: ${f.path}: the LFS upload action has no href`)
    o.onProgress?.({ file: f.path, bytes: 0, total: f.size })
    const progress = (bytes: number) => o.onProgress?.({ file: f.path, bytes, total: f.size })
    const chunkSize = upload.header?.chunk_size
    if (chunkSize === undefined) {
      await put(upload.href, f, 0, f.size, progress, repoId)
    } else {
      const size = Number(chunkSize)
      const parts = Object.entries(upload.header ?? {})
        .filter(([k]) => /^\d+$/.test(k))
        .sort(([a], [b]) => Number(a) - Number(b))
      if (!(size > 0) || parts.length !== Math.ceil(f.size / size))
        throw new Error(
          `push: ${repoId}: ${f.path}: the LFS multipart action does not fit the file (${parts.length} parts of ${chunkSize} bytes)`,
        )
      const etags: { partNumber: number; etag: string }[] = []
      for (let p = 0; p < parts.length; p++) {
        const start = p * size
        const etag = await put(parts[p][1], f, start, Math.min(size, f.size - start), (b) => progress(start + b), repoId)
        if (!etag) throw new Error(`push: ${repoId}: ${f.path}: part ${p + 1} of ${parts.length} was stored without an ETag`)
        etags.push({ partNumber: p + 1, etag })
      }
      await call(upload.href, `${f.path}: completing its upload`, repoId, {
        method: 'POST',
        headers: LFS_HEADERS,
        body: JSON.stringify({ oid: f.sha256, parts: etags }),
      })
    }
    sent += f.size
    const verify = obj.actions?.verify
    if (verify && typeof verify.href === 'string')
      await call(verify.href, `${f.path}: verifying its upload`, repoId, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ oid: f.sha256, size: f.size }),
      })
  }
  return sent
}

/**
 * PUTs bytes [start, start + length) of `f` to `url` (a storage URL, signed: no token is sent) with their length
 * announced (storage refuses chunked uploads); returns the ETag the storage answers with.
 */
function put(url: string, f: LocalFile, start: number, length: number, progress: (bytes: number) => void, repoId: string): Promise<string> {
  return new Promise((done, fail) => {
    const failWith = (why: string) =>
      fail(new Error(`push: ${repoId}: ${f.path}: uploading bytes ${start}-${start + length} failed (${why}); run again`))
    let target: URL
    try {
      target = new URL(url)
    } catch {
      return failWith(`not a URL: ${url.slice(0, 100)}`)
    }
    const req = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, {
      method: 'PUT',
      headers: { 'content-length': String(length) },
    })
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => {
        if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) done(String(res.headers.etag ?? ''))
        else failWith(`HTTP ${res.statusCode}`)
      })
    })
    req.on('error', (e) => failWith(e.message))
    let bytes = 0
    // (length > 0: LFS files are never empty)
    const body: Readable = f.content
      ? Readable.from([f.content.subarray(start, start + length)])
      : createReadStream(f.abs, { start, end: start + length - 1 })
    body.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      progress(bytes)
    })
    body.on('error', (e: Error) => {
      req.destroy()
      failWith(e.message)
    })
    body.pipe(req)
  })
}
