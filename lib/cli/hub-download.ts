// A command's --model (or --teacher) given as a Hugging Face Hub id, and its data files given as hf://datasets/...
// paths: resolved to their cached snapshot before the command runs, with the download's progress on stderr (one bar
// per file of a megabyte or more, in MB).
import { isHubModelId, resolveHfPath, resolveModel } from '../hub/hub-model.js'
import { ProgressBar } from './progress.js'

/** One progress bar on stderr per file of a megabyte or more, for the Hub's downloads and uploads. */
export function fileProgressBars(): {
  onProgress: (p: { file: string; bytes: number; total: number }) => void
  finish: () => void
} {
  let bar: ProgressBar | null = null
  let file = ''
  return {
    onProgress: ({ file: f, bytes, total }) => {
      if (f !== file) {
        bar?.finish()
        file = f
        // (the file's name shortened to its end, so that the bar fits 80 columns)
        const name = f.length > 24 ? `…${f.slice(-23)}` : f
        bar = total >= 1 << 20 ? new ProgressBar({ total: Math.ceil(total / 1e6), stream: process.stderr, unit: `MB ${name}` }) : null
      }
      bar?.update(Math.floor(bytes / 1e6))
    },
    finish: () => bar?.finish(),
  }
}

/** The folder `ref` names: itself, or a Hub model's snapshot (downloaded with progress where the cache lacks it). */
export async function resolveModelFlag(ref: string): Promise<string>
export async function resolveModelFlag(ref: string | undefined): Promise<string | undefined>
export async function resolveModelFlag(ref: string | undefined): Promise<string | undefined> {
  if (ref === undefined || !isHubModelId(ref)) return ref
  const bars = fileProgressBars()
  const dir = await resolveModel(ref, { onProgress: bars.onProgress })
  bars.finish()
  return dir
}

/** The local path of a data flag's value: itself, or an hf://datasets/... path's cached files (downloaded with
 * progress where the cache lacks them). */
export async function resolveDataFlag(ref: string): Promise<string>
export async function resolveDataFlag(ref: string | undefined): Promise<string | undefined>
export async function resolveDataFlag(ref: string | undefined): Promise<string | undefined> {
  if (ref === undefined || !ref.startsWith('hf://')) return ref
  const bars = fileProgressBars()
  const path = await resolveHfPath(ref, { onProgress: bars.onProgress })
  bars.finish()
  return path
}

/** resolveDataFlag over each value of a repeatable flag. */
export async function resolveDataFlags(refs: string[] | undefined): Promise<string[] | undefined> {
  if (refs === undefined) return undefined
  const out: string[] = []
  for (const r of refs) out.push(await resolveDataFlag(r)) // (one after another: one progress bar at a time)
  return out
}
