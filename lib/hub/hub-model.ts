// Models named by their Hugging Face Hub id ('sentence-transformers/all-MiniLM-L6-v2', 'BAAI/bge-small-en-v1.5@main'):
// resolved to a folder of huggingface_hub's cache, downloaded into it when missing, so that Python and Node share one
// cache. The cache's layout is huggingface_hub's (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub):
//   models--{org}--{name}/refs/{revision}          the commit the revision pointed at, as text
//   models--{org}--{name}/blobs/{etag}             each file's bytes once (etag: the LFS sha256, else the git blob id)
//   models--{org}--{name}/snapshots/{commit}/{path} a symbolic link to ../../blobs/{etag} (a copy where links fail)
// Online, a revision is looked up on the Hub (`GET {endpoint}/api/models/{id}/revision/{revision}?blobs=true`: the
// commit and each file's etag) and the files the snapshot lacks are downloaded (`GET {endpoint}/{id}/resolve/{commit}/
// {path}`), each into blobs/{etag}.{pid}.incomplete, checked (size; sha256 for LFS files) and renamed, so an interrupted
// download leaves no partial file under a real name. Offline (HF_HUB_OFFLINE=1), or when the Hub cannot be reached,
// the snapshot the cache's ref names is used as it is. Weights of other frameworks are not downloaded (ONNX, TF, Flax,
// OpenVINO, GGUF, ...), nor PyTorch pickles beside safetensors.
// Datasets' files, named hf://datasets/{org}/{name}[@{revision}]/{path} (resolveHfPath), are cached the same way in
// datasets--{org}--{name}/ (`GET {endpoint}/api/datasets/{id}/revision/...`, `GET {endpoint}/datasets/{id}/resolve/...`),
// only the files the path names.
import { createHash } from 'node:crypto'
import { createWriteStream, existsSync, readFileSync, statSync } from 'node:fs'
import { copyFile, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { basename, dirname, join, relative } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'

export interface HubOptions {
  /** Branch, tag or commit (default: the id's `@revision`, else 'main'). */
  revision?: string
  /** The cache folder (default: HF_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string
  /** An access token for private and gated models (default: HF_TOKEN, else the token `huggingface-cli login` saved). */
  token?: string
  /** The Hub's address (default: HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string
  /** Use the cache only (default: HF_HUB_OFFLINE=1). */
  offline?: boolean
  /** Each file as it starts downloading, then its bytes as they arrive. */
  onProgress?: (p: { file: string; bytes: number; total: number }) => void
  env?: NodeJS.ProcessEnv
}

/** One file of a Hub revision: its path, size and the name of its blob in the cache. */
interface HubFile {
  path: string
  size: number
  etag: string
  sha256?: string
}

const ID = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?(@[\w./-]+)?$/

/**
 * Whether `ref` names a Hub model rather than a folder: 'org/name' or 'name', optionally '@revision', and no folder of
 * that name exists here.
 */
export function isHubModelId(ref: string): boolean {
  return typeof ref === 'string' && ID.test(ref) && !ref.includes('..') && !existsSync(ref.split('@')[0]) && !existsSync(ref)
}

/** The Hub id ('org/name') of a snapshot folder of the cache (models--org--name/snapshots/COMMIT), else null. */
export function hubIdOf(dir: string): string | null {
  const m = /(?:^|[\\/])models--([^\\/]+)[\\/]snapshots[\\/][0-9a-f]{40}[\\/]?$/.exec(dir)
  return m ? m[1].replace(/--/g, '/') : null
}

/** huggingface_hub's home folder: HF_HOME, else XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
function hfHome(env: NodeJS.ProcessEnv): string {
  return env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface')
}

/** huggingface_hub's cache folder for `env`: HF_HUB_CACHE, else the home's hub/. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HUB_CACHE || join(hfHome(env), 'hub')
}

/**
 * The folder of `ref`: `ref` itself unless it is a Hub model id (isHubModelId), else that model's snapshot in the cache,
 * downloaded first where the cache lacks it.
 */
export async function resolveModel(ref: string, options: HubOptions = {}): Promise<string> {
  if (!isHubModelId(ref)) return ref
  const [id, atRevision] = ref.split('@')
  return (await snapshot('model', id, options.revision ?? atRevision ?? 'main', wanted, ref, options)).dir
}

const HF_DATASET_PATH = /^hf:\/\/datasets\/([A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*)(?:@([^/]+))?(?:\/(.*))?$/

/**
 * The Hub dataset an hf://datasets/ path names: its id, the path in it ('' for the whole dataset) and the revision as
 * written (URL-encoded; absent without `@`); else null.
 */
export function hubDatasetOf(ref: string): { id: string; path: string; revision?: string } | null {
  const m = HF_DATASET_PATH.exec(ref)
  return m ? { id: m[1], path: (m[3] ?? '').replace(/\/+$/, ''), ...(m[2] ? { revision: m[2] } : {}) } : null
}

/**
 * The Hub dataset a path of the cache is a file or folder of (datasets--org--name/snapshots/COMMIT/PATH: what an
 * hf://datasets/ path resolves to, and what runs record): its id, the path in it, the commit; else null.
 */
export function cachedHubDatasetOf(path: string): { id: string; path: string; revision: string } | null {
  const m = /(?:^|[\\/])datasets--([^\\/]+)[\\/]snapshots[\\/]([0-9a-f]{40})(?:[\\/](.*))?$/.exec(path)
  // (a repository's id holds no '--': huggingface_hub refuses it, as the cache's folder names need)
  return m ? { id: m[1].replace('--', '/'), path: (m[3] ?? '').replace(/[\\/]+$/, '').replace(/\\/g, '/'), revision: m[2] } : null
}

/**
 * How a Hub dataset's set (an hf://datasets/ path, or its copy in the cache) is named in tables, logs and model cards:
 * by the dataset's name and the path in it (`scifact`, `stsbenchmark-sts/test.jsonl.gz`: a base name alone says
 * `test.jsonl.gz` of every MTEB STS set, and a whole dataset's snapshot folder is named by its commit), typed by the
 * dataset's id (as MTEB's results are); null for any other path.
 */
export function hubSetNaming(path: string): { name: string; type: string } | null {
  const hub = hubDatasetOf(path) ?? cachedHubDatasetOf(path)
  return hub && { name: [hub.id.split('/')[1], hub.path].filter(Boolean).join('/'), type: hub.id }
}

/** A set's name in tables and logs: a Hub dataset's by hubSetNaming, any other path by its base name. */
export const setLabel = (path: string): string => hubSetNaming(path)?.name ?? basename(path)

/**
 * The local path of `ref` where it names a Hub dataset's files, `hf://datasets/ORG/NAME[@REVISION]/PATH` (the form
 * huggingface_hub's file system, pandas and polars read; a revision with slashes URL-encoded, refs%2Fpr%2F1): PATH,
 * a file, a folder or a file-name pattern (train-*.parquet), in the dataset's cached snapshot, its files downloaded
 * where missing. Any other `ref` is returned as it is.
 */
export async function resolveHfPath(ref: string, options: HubOptions = {}): Promise<string> {
  if (typeof ref !== 'string' || !ref.startsWith('hf://')) return ref
  const hub = hubDatasetOf(ref)
  if (!hub || hub.path.split('/').some((p) => p === '..' || p === '.'))
    throw new Error(
      `${ref}: an hf:// path names files of a Hub dataset: hf://datasets/ORG/NAME[@REVISION]/PATH (PATH: a file, a folder, or ` +
        'a pattern of file names such as train-*.parquet)',
    )
  const { id, path } = hub
  const slash = path.lastIndexOf('/')
  const [folder, name] = [path.slice(0, slash + 1), path.slice(slash + 1)]
  const pattern = /[*?]/.test(name)
    ? new RegExp(
        `^${name
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')}$`,
      )
    : null
  const select = (f: HubFile) =>
    pattern
      ? f.path.startsWith(folder) && pattern.test(f.path.slice(folder.length))
      : path === '' || f.path === path || f.path.startsWith(`${path}/`)
  let revision = options.revision ?? 'main'
  if (!options.revision && hub.revision)
    try {
      revision = decodeURIComponent(hub.revision)
    } catch {
      throw new Error(`${ref}: the revision ${JSON.stringify(hub.revision)} is not URL-encoded (refs/pr/1 is refs%2Fpr%2F1)`)
    }
  const got = await snapshot('dataset', id, revision, (f) => select(f) && f.path !== '.gitattributes', ref, options)
  if (got.online && got.files === 0)
    throw new Error(`${ref}: no file of the dataset ${id} at ${revision} is ${pattern ? 'matched by' : 'at'} '${path}'`)
  return path ? join(got.dir, path) : got.dir
}

/**
 * The snapshot folder of a Hub repository (a model or a dataset) at `revision`, its `select`ed files downloaded where
 * the cache lacks them; with how many files were selected (`online`: the Hub answered; else the cache was used as it
 * is). `ref`: how the user named it, for messages.
 */
async function snapshot(
  kind: 'model' | 'dataset',
  id: string,
  revision: string,
  select: (f: HubFile, all: HubFile[]) => boolean,
  ref: string,
  options: HubOptions,
): Promise<{ dir: string; files: number; online: boolean }> {
  const env = options.env ?? process.env
  if (!/^[\w.-]+(\/[\w.-]+)*$/.test(revision) || revision.split('/').includes('..'))
    throw new Error(`${ref}: revision ${JSON.stringify(revision)} is not a branch, tag or commit name`)
  const repo = join(options.cacheDir ?? hubCacheDir(env), `${kind}s--${id.replace(/\//g, '--')}`)
  const cached = cachedSnapshot(repo, revision)
  const offline = options.offline ?? ['1', 'true', 'yes', 'on'].includes((env.HF_HUB_OFFLINE ?? '').toLowerCase())
  if (offline) {
    if (cached) return { dir: cached, files: 0, online: false }
    throw new Error(`${ref}: not in the Hugging Face cache (${repo}), and HF_HUB_OFFLINE is set: download it once online`)
  }
  const endpoint = hubEndpoint(options.endpoint, env)
  const token = options.token ?? hubToken(env)
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}
  let info: { commit: string; files: HubFile[] }
  try {
    info = await revisionInfo(endpoint, kind, id, revision, headers)
  } catch (e) {
    // Unreachable (no network, a proxy, a timeout): the cache's snapshot, as huggingface_hub falls back to it.
    if (!(e as { unreachable?: boolean }).unreachable) throw e
    if (cached) return { dir: cached, files: 0, online: false }
    throw new Error(`${ref}: ${kind === 'model' ? 'no folder of that name here, and ' : ''}${(e as Error).message}`)
  }
  const snapshot = join(repo, 'snapshots', info.commit)
  const chosen = info.files.filter((f, _, all) => select(f, all))
  const urlPrefix = kind === 'model' ? endpoint : `${endpoint}/datasets`
  for (const f of chosen) {
    const link = join(snapshot, f.path)
    if (existsSync(link)) continue
    const blob = join(repo, 'blobs', f.etag)
    if (!existsSync(blob)) await download(id, `${urlPrefix}/${id}/resolve/${info.commit}/${encodePath(f.path)}`, blob, f, headers, options)
    await mkdir(dirname(link), { recursive: true })
    // (where links cannot be made, a copy; a link another process made meanwhile is kept: a copy onto it would
    // truncate the blob it points at)
    await symlink(relative(dirname(link), blob), link).catch(async (e) => {
      if (!existsSync(link)) await copyFile(blob, link).catch(() => Promise.reject(e))
    })
  }
  if (info.commit !== revision) {
    const refFile = join(repo, 'refs', revision) // (refs/pr/1 in folders, as huggingface_hub keeps it)
    await mkdir(dirname(refFile), { recursive: true })
    await writeFile(refFile, info.commit)
  }
  await mkdir(snapshot, { recursive: true })
  return { dir: snapshot, files: chosen.length, online: true }
}

/** The snapshot folder the cache holds for `revision` (a commit, or a ref naming one), or null. */
function cachedSnapshot(repo: string, revision: string): string | null {
  const refFile = join(repo, 'refs', revision)
  const commit = existsSync(refFile) ? readFileSync(refFile, 'utf8').trim() : revision
  const dir = join(repo, 'snapshots', commit)
  return /^[0-9a-f]{40}$/.test(commit) && existsSync(dir) ? dir : null
}

/** The Hub's address: `endpoint`, else HF_ENDPOINT, else https://huggingface.co (no trailing slash). */
export function hubEndpoint(endpoint: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return (endpoint ?? env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '')
}

/**
 * The access token: HF_TOKEN, else the one `huggingface-cli login` saved (HF_TOKEN_PATH, else HF_HOME/token, else
 * ~/.cache/huggingface/token), else undefined.
 */
export function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.HF_TOKEN) return env.HF_TOKEN
  const file = env.HF_TOKEN_PATH || join(hfHome(env), 'token')
  try {
    return readFileSync(file, 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}

const OTHER_FRAMEWORKS = /(^|\/)(onnx|openvino|coreml|tflite)\/|\.(h5|msgpack|ot|onnx|onnx_data|gguf|tflite|mlmodel|pb|ckpt|pt|pth)$/i

/** Whether a file of a model is downloaded: not another framework's weights, nor a pickle beside safetensors. */
function wanted({ path }: HubFile, all: HubFile[]): boolean {
  if (OTHER_FRAMEWORKS.test(path) || path === '.gitattributes') return false
  if (/(^|\/)pytorch_model[^/]*\.bin(\.index\.json)?$/.test(path)) {
    const folder = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : ''
    return !all.some((f) => f.path.startsWith(folder) && !f.path.slice(folder.length).includes('/') && f.path.endsWith('.safetensors'))
  }
  return true
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/')
}

/** An Error for an HTTP failure of `what`, saying what to do. `kind`: the repository's, when `what` is its revision. */
function httpError(what: string, status: number, id: string, kind?: 'model' | 'dataset'): Error {
  if (status === 401 || status === 403)
    return new Error(`${what}: HTTP ${status}: '${id}' is private or gated: accept its terms on the Hub and set HF_TOKEN`)
  if (status === 404 && kind)
    return new Error(
      `${what}: HTTP 404: no ${kind} '${id}' on the Hub at that revision${kind === 'model' ? ' (and no folder of that name here)' : ''}`,
    )
  return new Error(`${what}: HTTP ${status}`)
}

/**
 * fetch (a GET unless `init` says otherwise), its network failures marked `unreachable`, their message ending with
 * `hint`.
 */
export async function hubFetch(
  url: string,
  headers: Record<string, string>,
  init: RequestInit = {},
  hint = '; HF_HUB_OFFLINE=1 uses the cache only',
): Promise<Response> {
  try {
    return await fetch(url, { headers, redirect: 'follow', ...init })
  } catch (e) {
    // (fetch's own message is 'fetch failed'; its cause says why: ENOTFOUND, ECONNREFUSED, possibly inside an
    // AggregateError of the addresses tried)
    type Cause = { code?: string; message?: string; errors?: Cause[] }
    const cause = (e as Error).cause as Cause | undefined
    const why = cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? (e as Error).message
    const err = new Error(`the Hugging Face Hub could not be reached (${url}: ${why})${hint}`)
    ;(err as Error & { unreachable: boolean }).unreachable = true
    throw err
  }
}

async function revisionInfo(endpoint: string, kind: 'model' | 'dataset', id: string, revision: string, headers: Record<string, string>) {
  const url = `${endpoint}/api/${kind}s/${id}/revision/${encodeURIComponent(revision)}?blobs=true`
  const res = await hubFetch(url, headers)
  if (!res.ok) throw httpError(`${id}@${revision}`, res.status, id, kind)
  const body = (await res.json()) as {
    sha?: string
    siblings?: { rfilename: string; size?: number; blobId?: string; lfs?: { sha256: string; size: number } }[]
  }
  if (typeof body.sha !== 'string' || !/^[0-9a-f]{40}$/.test(body.sha) || !Array.isArray(body.siblings))
    throw new Error(`${url}: not a Hub ${kind} description (no commit or file list)`)
  const files: HubFile[] = []
  for (const s of body.siblings) {
    const etag = s.lfs?.sha256 ?? s.blobId
    if (
      typeof s.rfilename !== 'string' ||
      typeof etag !== 'string' ||
      !/^[0-9a-f]{40,64}$/.test(etag) ||
      s.rfilename.split('/').includes('..')
    )
      throw new Error(`${url}: a file entry without a usable name or blob id: ${JSON.stringify(s).slice(0, 200)}`)
    files.push({ path: s.rfilename, size: s.lfs?.size ?? s.size ?? -1, etag, sha256: s.lfs?.sha256 })
  }
  return { commit: body.sha, files }
}

/** One file into `blob`, through blob.{pid}.incomplete: its size and (LFS) sha256 checked before the rename. */
async function download(id: string, url: string, blob: string, f: HubFile, headers: Record<string, string>, o: HubOptions): Promise<void> {
  await mkdir(dirname(blob), { recursive: true })
  const part = `${blob}.${process.pid}.incomplete`
  const res = await hubFetch(url, headers)
  // (a gated model's description is public, its files are not: 401 or 403 here)
  if (!res.ok || !res.body) throw httpError(`${id}: ${f.path}`, res.status, id)
  const total = f.size >= 0 ? f.size : Number(res.headers.get('content-length') ?? -1)
  const hash = createHash('sha256')
  let bytes = 0
  o.onProgress?.({ file: f.path, bytes: 0, total })
  // Counted and hashed on the way to the file, at the pace the file is written.
  const counted = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      bytes += chunk.length
      if (f.sha256) hash.update(chunk)
      o.onProgress?.({ file: f.path, bytes, total })
      yield chunk
    }
  }
  try {
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), counted, createWriteStream(part))
    if (f.size >= 0 && statSync(part).size !== f.size)
      throw new Error(`${url}: received ${statSync(part).size} bytes of ${f.size} (the download was cut short); run again`)
    if (f.sha256 && hash.digest('hex') !== f.sha256)
      throw new Error(`${url}: the downloaded bytes do not have the sha256 the Hub lists; run again`)
    await rename(part, blob)
  } catch (e) {
    await rm(part, { force: true })
    // (a connection lost mid-file: the stream's own message, e.g. 'terminated', said nothing of the file)
    if ((e as Error).message.startsWith(url)) throw e
    throw new Error(`${id}: ${f.path}: the download failed after ${bytes} bytes (${(e as Error).message}); run again`)
  }
}
