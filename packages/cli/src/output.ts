/** The streams a command prints to. Results go to stdout; progress and notes to stderr. */
export interface OutputStreams {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
}

/** One column of a table: its header and how to show a row's value. */
export interface Column<Row> {
  header: string
  value: (row: Row) => unknown
}

/** How a command prints: plain lines, aligned tables, or JSON for scripts. */
export class Output {
  readonly #streams: OutputStreams

  constructor(streams: OutputStreams = { stdout: process.stdout, stderr: process.stderr }) {
    this.#streams = streams
  }

  /** A line of the command's result, on stdout. */
  line(text = ''): void {
    this.#streams.stdout.write(`${text}\n`)
  }

  /** Progress or a remark, on stderr, so that stdout stays the result alone. */
  note(text: string): void {
    this.#streams.stderr.write(`${text}\n`)
  }

  /** stderr when it is a terminal (a live progress bar may be drawn there), otherwise `undefined`. */
  terminal(): NodeJS.WriteStream | undefined {
    const stderr = this.#streams.stderr as Partial<NodeJS.WriteStream>
    return stderr.isTTY === true && process.env.TERM !== 'dumb' ? (stderr as NodeJS.WriteStream) : undefined
  }

  /** The whole result as one JSON document on stdout. */
  json(value: unknown): void {
    this.line(toJson(value))
  }

  table<Row>(rows: readonly Row[], columns: ReadonlyArray<Column<Row>>, indent = ''): void {
    for (const line of formatTable(rows, columns)) this.line(indent + line)
  }
}

/**
 * Rows as aligned text columns under a header row. Cells are made safe for a terminal,
 * since names and SQL results are whatever someone stored.
 */
export function formatTable<Row>(rows: readonly Row[], columns: ReadonlyArray<Column<Row>>): string[] {
  const cells = rows.map((row) => columns.map((column) => cell(column.value(row))))
  const headers = columns.map((column) => column.header)
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((row) => row[i]!.length)))
  const render = (row: string[]) =>
    row
      .map((text, i) => (i === row.length - 1 ? text : text.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [render(headers), ...cells.map(render)]
}

/** A value as table text: `NULL` for null, blobs by size, objects as JSON, control characters escaped. */
export function cell(value: unknown): string {
  if (value === null || value === undefined) return 'NULL'
  if (value instanceof Uint8Array) return `<blob ${value.byteLength} bytes>`
  if (typeof value === 'object') return safeText(JSON.stringify(value, jsonReplacer))
  return safeText(String(value))
}

// C0/C1 controls (terminal escape sequences, line breaks) and bidi overrides (text that reads backwards).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/** Text safe to print on a terminal: control and bidi characters become `\uXXXX`. */
export function safeText(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** `text` in quotes with everything outside printable ASCII escaped, so look-alike letters show up. */
export function quoteInput(text: string): string {
  return JSON.stringify(text).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** JSON with bigints as numbers (strings past 2^53) and blobs as base64. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, jsonReplacer, 2)
}

function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  // Buffer#toJSON has already run by the time `value` arrives: look at the holder's own value.
  const raw = (this as Record<string, unknown>)[key]
  if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64')
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()
  return value
}

/** A catalog URL fit to print: a password in it is replaced by `***`. */
export function redactUrl(url: string): string {
  if (!/^[a-z]+:\/\//i.test(url)) return url
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@')
  }
}
