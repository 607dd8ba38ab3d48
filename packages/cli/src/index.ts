/**
 * `@tenantry/cli`: the `tenantry` command, to run in-process (a script, a test, another CLI
 * that embeds it). The `tenantry` bin is the same program.
 *
 * @example
 * import { runCli } from '@tenantry/cli'
 * process.exitCode = await runCli(['tenant', 'list', '--json'])
 */
export { createProgram, runCli } from './program.js'
export type { ProgramOptions } from './program.js'
export type { OutputStreams } from './output.js'
export { EXIT } from './errors.js'
export { createCliLogger } from './logger.js'
export type { CliLoggerOptions } from './logger.js'
