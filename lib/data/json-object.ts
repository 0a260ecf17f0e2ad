// One line of a JSON Lines file as the object it must hold: every JSON Lines reader (sentences, pairs, groups,
// evaluation tables) refuses other lines with the same words.

/** The object on one line; `where` names it in the error ("FILE: line N"). */
export function jsonObjectOf(line: string, where: string): Record<string, unknown> {
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch {
    throw new Error(`${where} is not JSON (one object per line is expected)`)
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${where} is not a JSON object`)
  return v as Record<string, unknown>
}
