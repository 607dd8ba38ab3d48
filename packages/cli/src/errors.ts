/** Exit codes of the `tenantry` command. */
export const EXIT = {
  OK: 0,
  /** Something went wrong while doing what was asked (a tenant not found, a failed migration). */
  FAILURE: 1,
  /** The command line itself is wrong (unknown command or option, invalid argument). */
  USAGE: 2,
} as const

/** Bad command-line input, refused before anything is opened or changed. Exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** An error whose message has already been printed; only its exit code is left to apply. */
export class ExitError extends Error {
  override readonly name = 'ExitError'
  readonly exitCode: number

  constructor(exitCode: number, message = `exit ${exitCode}`) {
    super(message)
    this.exitCode = exitCode
  }
}

/** The exit code for an error thrown by a command. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof ExitError) return error.exitCode
  if (error instanceof UsageError) return EXIT.USAGE
  return EXIT.FAILURE
}

/** One line for stderr: `tenantry: <message>`, whatever the error's own line breaks. */
export function formatError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  return `tenantry: ${oneLine(message)}`
}

/** Collapses line breaks, so an error is always a single line. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim()
}
