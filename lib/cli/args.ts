// Small helpers for the CLI's flags: numbers with names in the errors, and the usage on failure.
import { inRange, rangeMessage, type NumberRange } from '../util/number-range.js'

export class UsageError extends Error {}

export function num(name: string, v: string | undefined, range: NumberRange = {}): number | undefined {
  if (v === undefined) return undefined
  const x = Number(v)
  if (v.trim() === '' || !inRange(x, range)) throw new UsageError(rangeMessage(`--${name}`, range, JSON.stringify(v)))
  return x
}

export function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`)
  return v as T
}
