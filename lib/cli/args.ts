// Small helpers for the CLI's flags: numbers with names in the errors, and the usage on failure.
import { inRange, rangeMessage, type NumberRange } from '../util/number-range.js'
import { parseArgs, type ParseArgsConfig } from 'node:util'

export class UsageError extends Error {}

export function num(name: string, v: string | undefined, range: NumberRange = {}): number | undefined {
  if (v === undefined) return undefined
  const x = Number(v)
  if (v.trim() === '' || !inRange(x, range)) throw new UsageError(rangeMessage(`--${name}`, range, JSON.stringify(v)))
  return x
}

/** A comma-separated list of numbers ("768,512,256"), each within `range`; undefined when the flag is absent. */
export function numList(name: string, v: string | undefined, range: NumberRange = {}): number[] | undefined {
  if (v === undefined) return undefined
  const items = v.split(',').map((x) => x.trim())
  return items.map((x) => {
    const n = Number(x)
    if (x === '' || !inRange(n, range))
      throw new UsageError(rangeMessage(`--${name}`, range, `${JSON.stringify(x)} in ${JSON.stringify(v)}`))
    return n
  })
}

export function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`)
  return v as T
}

/** `--help` was asked for: main prints `usage` on stdout and exits 0. */
export class HelpRequest extends Error {
  constructor(readonly usage: string) {
    super('help requested')
  }
}

/**
 * parseArgs (strict) with the command's own `--help` / `-h` (HelpRequest with `usage`), and parse
 * errors as usage errors; an unknown option names the closest known one.
 */
export function parseFlags<T extends ParseArgsConfig>(usage: string, config: T): ReturnType<typeof parseArgs<T>> {
  const options = { ...config.options, help: { type: 'boolean', short: 'h' } } as const
  let parsed
  try {
    parsed = parseArgs({ ...config, options, strict: true })
  } catch (e) {
    const m = /^Unknown option '(-{1,2}[^']*)'/.exec((e as Error).message)
    if (!m) throw new UsageError((e as Error).message)
    throw new UsageError(`unknown option ${m[1]}${didYouMean(m[1], Object.keys(config.options ?? {}))}`)
  }
  if ((parsed.values as { help?: boolean }).help) throw new HelpRequest(usage)
  return parsed as ReturnType<typeof parseArgs<T>>
}

/** ' (did you mean --x?)' for the known flag closest to `given`, or '' when none is close. */
export function didYouMean(given: string, known: string[]): string {
  const name = given.replace(/^-+/, '').split('=')[0]
  let best = '',
    bestD = Infinity
  for (const k of known) {
    const d = k.startsWith(name) || name.startsWith(k) ? Math.min(1, editDistance(name, k)) : editDistance(name, k)
    if (d < bestD) [best, bestD] = [k, d]
  }
  // Within a third of the name's length: closer guesses are typos, farther ones are other words.
  return best && bestD <= Math.max(1, Math.floor(name.length / 3)) ? ` (did you mean --${best}?)` : ''
}

/** Edit distance with adjacent transpositions (optimal string alignment): "modle" is 1 from "model". */
function editDistance(a: string, b: string): number {
  let before: number[] = []
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) cur[j] = Math.min(cur[j], before[j - 2] + 1)
    }
    before = prev
    prev = cur
  }
  return prev[b.length]
}
