// Small helpers for the CLI's flags: numbers with names in the errors, and the usage on failure.
export class UsageError extends Error {}

export function num(name: string, v: string | undefined, opts: { int?: boolean; min?: number; gt?: number } = {}): number | undefined {
  if (v === undefined) return undefined
  const x = Number(v)
  const ok =
    v.trim() !== '' &&
    Number.isFinite(x) &&
    (!opts.int || Number.isInteger(x)) &&
    (opts.min === undefined || x >= opts.min) &&
    (opts.gt === undefined || x > opts.gt)
  if (!ok) {
    const what = [
      opts.int ? 'an integer' : 'a number',
      opts.min !== undefined ? `>= ${opts.min}` : '',
      opts.gt !== undefined ? `> ${opts.gt}` : '',
    ]
      .filter(Boolean)
      .join(' ')
    throw new UsageError(`--${name} must be ${what} (got ${JSON.stringify(v)})`)
  }
  return x
}

export function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`)
  return v as T
}
