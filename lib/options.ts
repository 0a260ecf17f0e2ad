// Option-object validation shared by the public API: unknown names and wrong types are reported
// with the option's name, so a typo (`temprature`) is an Error rather than a silently ignored key.
import { describe } from './tensor.js'

export type OptionKind = 'number' | 'positive' | 'temperature' | 'scale' | 'boolean' | 'integer' | 'any'

/** A loss temperature's range, and a loss scale's (posScale, dclWeight) bound: 1/temperature and the
 * scaled logits stay finite in float32. The addon checks the same ranges (native/args.h). */
export const TEMPERATURE_RANGE = [1e-6, 1e6] as const
export const MAX_SCALE = 1e6

export function checkOptions<T extends object>(where: string, options: unknown, spec: Record<keyof T & string, OptionKind>): Partial<T> {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${where}: expected options to be an object but received ${describe(options)}`)
  }
  for (const [name, value] of Object.entries(options)) {
    if (!(name in spec)) {
      const known = Object.keys(spec).join(', ')
      throw new TypeError(`${where}: unknown option '${name}' (known options: ${known})`)
    }
    if (value === undefined) continue
    const kind = spec[name as keyof T & string]
    const bad = (what: string) => new TypeError(`${where}: expected option ${name} to be ${what} but received ${describe(value)}`)
    switch (kind) {
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value)) throw bad('a finite number')
        break
      case 'positive':
        if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw bad('a number > 0')
        break
      case 'temperature': {
        const [lo, hi] = TEMPERATURE_RANGE
        if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw bad(`a number > 0 in [${lo}, ${hi}]`)
        if (value < lo || value > hi) throw bad(`in [${lo}, ${hi}] (1/${name} must stay finite in float32)`)
        break
      }
      case 'scale':
        if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(`a finite number in [-${MAX_SCALE}, ${MAX_SCALE}]`)
        if (Math.abs(value) > MAX_SCALE) throw bad(`in [-${MAX_SCALE}, ${MAX_SCALE}]`)
        break
      case 'integer':
        if (!((typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) || (typeof value === 'bigint' && value >= 0n))) {
          throw bad('a non-negative integer')
        }
        break
      case 'boolean':
        if (typeof value !== 'boolean') throw bad('a boolean')
        break
      case 'any':
        break
    }
  }
  return options as Partial<T>
}
