// RFC 4180 records (CSV, and TSV with the same quoting): SimCSE's supervised files (nli_for_simcse.csv)
// quote fields holding commas, quotes ("" inside quotes) and line breaks, so splitting lines on commas
// would cut sentences apart. A malformed file is an error naming the line, never fields silently merged.

/** One record: its fields and the 1-based line it starts on (records may span lines). */
export interface CsvRecord {
  fields: string[]
  line: number
}

/**
 * Parses `text` into records separated by \n or \r\n, fields by `delimiter` (',' or '\t'). A quoted
 * field may hold delimiters, line breaks and doubled quotes; a quote inside an unquoted field is kept
 * as text (as Python's csv module reads it). Blank lines between records are skipped. Throws, naming
 * `path` and the line, on an unterminated quoted field or text after a closing quote.
 */
export function parseDelimited(text: string, delimiter: ',' | '\t', path: string): CsvRecord[] {
  const records: CsvRecord[] = []
  let fields: string[] = []
  let field = ''
  let line = 1
  let recordLine = 1
  let quoted = false // inside a quoted field
  let wasQuoted = false // the current field was quoted (so an empty record is not a blank line)
  const endRecord = () => {
    fields.push(field)
    if (fields.length > 1 || field !== '' || wasQuoted) records.push({ fields, line: recordLine })
    fields = []
    field = ''
    wasQuoted = false
  }
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"'
          i++
        } else {
          quoted = false
          const next = text[i + 1]
          if (next !== undefined && next !== delimiter && next !== '\n' && !(next === '\r' && text[i + 2] === '\n'))
            throw new Error(`${path}: line ${line}: text after a closing quote (a quote inside a quoted field is written "")`)
        }
      } else {
        if (c === '\n') line++
        field += c
      }
    } else if (c === '"' && field === '') {
      quoted = wasQuoted = true
    } else if (c === delimiter) {
      fields.push(field)
      field = ''
      wasQuoted = false
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      if (c === '\r') i++
      endRecord()
      line++
      recordLine = line
    } else field += c
  }
  if (quoted) throw new Error(`${path}: line ${recordLine}: a quoted field is never closed`)
  if (field !== '' || fields.length > 0 || wasQuoted) endRecord()
  return records
}
