// Allowed values of a numeric option, checked and described in one place for the library (option
// names) and the command line (flag names): finite, an integer where asked, within the bounds.

export interface NumberRange {
  int?: boolean
  /** Lower bound, inclusive (`min`) or exclusive (`gt`). */
  min?: number
  gt?: number
  /** Upper bound, inclusive (`max`) or exclusive (`lt`). */
  max?: number
  lt?: number
  /** Why the bound is there, appended to the error. */
  why?: string
}

export function inRange(x: unknown, r: NumberRange): x is number {
  return (
    typeof x === 'number' &&
    Number.isFinite(x) &&
    (!r.int || Number.isSafeInteger(x)) &&
    (r.min === undefined || x >= r.min) &&
    (r.gt === undefined || x > r.gt) &&
    (r.max === undefined || x <= r.max) &&
    (r.lt === undefined || x < r.lt)
  )
}

/** "an integer >= 2", "a number in (0, 1]". */
export function describeRange(r: NumberRange): string {
  const what = r.int ? 'an integer' : 'a number'
  const lo = r.gt ?? r.min,
    hi = r.lt ?? r.max
  if (lo !== undefined && hi !== undefined)
    return `${what} in ${r.gt !== undefined ? '(' : '['}${lo}, ${hi}${r.lt !== undefined ? ')' : ']'}`
  if (lo !== undefined) return `${what} ${r.gt !== undefined ? '>' : '>='} ${lo}`
  if (hi !== undefined) return `${what} ${r.lt !== undefined ? '<' : '<='} ${hi}`
  return what
}

/** The error text for `name` given `shown` (the value as the user wrote it). */
export function rangeMessage(name: string, r: NumberRange, shown: string): string {
  return `${name} must be ${describeRange(r)} (got ${shown})${r.why ? `: ${r.why}` : ''}`
}
