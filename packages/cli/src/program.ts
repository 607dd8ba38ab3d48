import { createRequire } from 'node:module'
import { Command, CommanderError } from 'commander'
import { registerDataSourceCommands } from './commands/data-source.js'
import { registerDoctorCommand } from './commands/doctor.js'
import { registerJobsCommands } from './commands/jobs.js'
import { registerMigrateCommands } from './commands/migrate.js'
import { registerSecretCommands } from './commands/secret.js'
import { registerSecretKeyCommands } from './commands/secret-key.js'
import { registerSqlCommand } from './commands/sql.js'
import { registerStartCommand } from './commands/start.js'
import { registerTenantCommands } from './commands/tenant.js'
import { registerTenantBulkCommands } from './commands/tenant-bulk.js'
import { registerTenantAdoptCommands } from './commands/tenant-adopt.js'
import { registerTokenCommands } from './commands/token.js'
import { EXIT, exitCodeFor, formatError, oneLine } from './errors.js'
import { Output, type OutputStreams } from './output.js'

const { version } = createRequire(import.meta.url)('../package.json') as { version: string }

export interface ProgramOptions {
  /** Where output goes. @default process.stdout and process.stderr */
  streams?: OutputStreams
  /** Print stack traces of unexpected errors. @default process.env.TENANTRY_DEBUG === '1' */
  debug?: boolean
}

/**
 * Builds the `tenantry` command. It never exits the process: parse errors surface as
 * `CommanderError`s (see `runCli`), and commands finish by returning.
 */
export function createProgram(options: ProgramOptions = {}): Command {
  const streams = options.streams ?? { stdout: process.stdout, stderr: process.stderr }
  const out = new Output(streams)
  const program = new Command('tenantry')
    .description('Tenantry: tenants, their databases and their migrations, from the command line')
    .version(version, '-v, --version')
    .option('--config <path>', 'the config file (default: tenantry.config.* in this directory or a parent)')
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: (text) => streams.stdout.write(text),
      writeErr: (text) => streams.stderr.write(text),
      // Commander's usage errors read "error: …", sometimes with a suggestion on a second line.
      outputError: (text, write) => write(`tenantry: ${oneLine(text.replace(/^error: /, ''))}\n`),
    })
    // Subcommands created after this inherit both the output and the exit override.
    .exitOverride()
  registerTenantCommands(program, out)
  registerTenantBulkCommands(program, out)
  registerTenantAdoptCommands(program, out)
  registerTokenCommands(program, out)
  registerMigrateCommands(program, out)
  registerSqlCommand(program, out)
  registerDataSourceCommands(program, out)
  registerStartCommand(program, out)
  registerDoctorCommand(program, out)
  registerSecretKeyCommands(program, out)
  registerSecretCommands(program, out)
  registerJobsCommands(program, out)
  return program
}

/**
 * Runs the command line `argv` (without `node` and the script) and returns the exit code:
 * 0 on success, 1 when the work failed, 2 when the command line was wrong. Every error is
 * one line on stderr, `tenantry: <message>`; the stack too when debugging.
 */
export async function runCli(argv: readonly string[], options: ProgramOptions = {}): Promise<number> {
  const stderr = options.streams?.stderr ?? process.stderr
  const debug = options.debug ?? process.env.TENANTRY_DEBUG === '1'
  const program = createProgram(options)
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return EXIT.OK
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed the help or the error already.
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.OK
      return EXIT.USAGE
    }
    stderr.write(`${formatError(error)}\n`)
    if (debug && error instanceof Error && error.stack) stderr.write(`${error.stack}\n`)
    return exitCodeFor(error)
  }
}
