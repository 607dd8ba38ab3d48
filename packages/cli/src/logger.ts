import type { Logger } from 'tenantry'
import { oneLine } from './errors.js'
import { safeText } from './output.js'

export interface CliLoggerOptions {
  /**
   * One JSON object per line (`{ level, message, tenantId, err, … }`) instead of text, for
   * commands run with `--json`. Either way the lines go to stderr: stdout stays the result.
   * @default false
   */
  json?: boolean
}

/**
 * The logger a command hands to Tenantry: warnings and errors that Tenantry handled without
 * failing the command (a handle that failed to close, a missed lock heartbeat) become one
 * line each, `tenantry: warning: <message>: <error> (tenantId=…)`. Info and debug are
 * dropped: the command prints its own progress.
 *
 * @example
 * const logger = createCliLogger((text) => process.stderr.write(text), { json: false })
 */
export function createCliLogger(write: (text: string) => void, options: CliLoggerOptions = {}): Logger {
  const emit = (level: 'warning' | 'error') => (facts: Record<string, unknown>, message: string) => {
    write(`${options.json ? jsonLine(level, facts, message) : textLine(level, facts, message)}\n`)
  }
  return { error: emit('error'), warn: emit('warning'), info: () => {}, debug: () => {} }
}

function textLine(level: string, facts: Record<string, unknown>, message: string): string {
  const { err, ...rest } = facts
  const cause = err === undefined ? '' : `: ${errorText(err)}`
  const details = Object.entries(rest)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ')
  // Whatever a database put in an error message, it must stay one line and safe on a terminal.
  return `tenantry: ${level}: ${safeText(oneLine(`${message}${cause}${details ? ` (${details})` : ''}`))}`
}

function jsonLine(level: string, facts: Record<string, unknown>, message: string): string {
  const { err, ...rest } = facts
  const error = err === undefined ? {} : { err: err instanceof Error ? errorFacts(err) : String(err) }
  return JSON.stringify({ level: level === 'warning' ? 'warn' : level, message, ...rest, ...error }, (_key, value: unknown) =>
    typeof value === 'bigint' ? value.toString() : value,
  )
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** What an error shows in a JSON log line: its type, message and code (Error's own fields are not enumerable). */
function errorFacts(err: Error): Record<string, unknown> {
  const code = (err as { code?: unknown }).code
  return { type: err.name, message: err.message, ...(code !== undefined ? { code } : {}) }
}
