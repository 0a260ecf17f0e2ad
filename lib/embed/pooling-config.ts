// Defaults a sentence-transformers model directory carries: 1_Pooling/config.json (the pooling mode)
// and modules.json (whether a Normalize module follows the pooling). Both are optional.
import { join } from 'node:path'
import type { Pooling } from '../model/bert.js'
import { readJsonFile } from '../util/json.js'

export interface SentenceTransformersDefaults {
  /** From the Pooling module's config, when it names a mode we implement. */
  pooling?: Pooling
  /** true when modules.json lists a Normalize module. */
  normalize?: boolean
  /** The pooling config file that was read, if any. */
  poolingFile?: string
  /** A pooling mode the config asks for that we do not implement (max, weightedmean, lasttoken, ...). */
  unsupportedPooling?: string
}

interface ModuleEntry {
  path?: unknown
  type?: unknown
}

const MODES: [key: string, name: string][] = [
  ['pooling_mode_cls_token', 'cls'],
  ['pooling_mode_mean_tokens', 'mean'],
  ['pooling_mode_max_tokens', 'max'],
  ['pooling_mode_mean_sqrt_len_tokens', 'mean_sqrt_len'],
  ['pooling_mode_weightedmean_tokens', 'weightedmean'],
  ['pooling_mode_lasttoken', 'lasttoken'],
]

/** Reads the sentence-transformers defaults of `dir` (none of the files needs to exist). */
export async function readSentenceTransformersDefaults(dir: string): Promise<SentenceTransformersDefaults> {
  const out: SentenceTransformersDefaults = {}
  const modules = await readJsonFile(join(dir, 'modules.json'), { optional: true })
  let poolingDir = '1_Pooling'
  if (Array.isArray(modules)) {
    const entries = modules as ModuleEntry[]
    const pool = entries.find((m) => typeof m?.type === 'string' && m.type.endsWith('models.Pooling'))
    if (pool && typeof pool.path === 'string' && pool.path) poolingDir = pool.path
    out.normalize = entries.some((m) => typeof m?.type === 'string' && m.type.endsWith('models.Normalize'))
  }
  const file = join(dir, poolingDir, 'config.json')
  const cfg = await readJsonFile(file, { optional: true })
  if (cfg === undefined) return out
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw new Error(`${file}: expected a JSON object`)
  const c = cfg as Record<string, unknown>
  out.poolingFile = file
  const on = MODES.filter(([key]) => c[key] === true).map(([, name]) => name)
  if (typeof c.pooling_mode === 'string' && !on.length) on.push(c.pooling_mode)
  if (on.length === 1 && (on[0] === 'cls' || on[0] === 'mean')) out.pooling = on[0]
  else if (on.length) out.unsupportedPooling = on.join('+')
  return out
}
