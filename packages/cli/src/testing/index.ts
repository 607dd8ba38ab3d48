import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** What a run of the `tenantry` command left: its exit code and everything it printed. */
export interface CliRun {
  /** 0 on success, 1 when the work failed, 2 when the command line was wrong. */
  code: number
  stdout: string
  stderr: string
}

export interface RunCliCapturedOptions {
  /**
   * The working directory: the nearest `tenantry.config.*` from here up is the config
   * (unless `--config` says otherwise), as for a user in that directory.
   * @default process.cwd()
   */
  cwd?: string
  /**
   * Environment variables over the current ones; `undefined` removes one (e.g.
   * `{ TENANTRY_HOME: dir, TENANTRY_CATALOG_URL: undefined }`).
   */
  env?: Record<string, string | undefined>
  /** Kill the command after this long (it then fails with code 1). @default 60000 */
  timeoutMs?: number
}

/** The `tenantry` bin of this package: the built command, exactly as users run it. */
export const CLI_BIN = fileURLToPath(new URL('../../bin/tenantry.js', import.meta.url))

/**
 * Runs the `tenantry` command in a child process, as a user would, and captures its exit
 * code, stdout and stderr. It never throws for a failing command: assert on `code`.
 *
 * A child process rather than `runCli` in this one, because the working directory and the
 * environment decide which config and which home the command uses, and tests that run
 * concurrently must not share them.
 *
 * @example
 * const run = await runCliCaptured(['tenant', 'list', '--json'], { cwd: app, env: { TENANTRY_HOME: home } })
 * expect(run.code).toBe(0)
 * expect(JSON.parse(run.stdout)).toEqual([])
 */
export function runCliCaptured(argv: readonly string[], options: RunCliCapturedOptions = {}): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name]
    else env[name] = value
  }
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_BIN, ...argv],
      { cwd: options.cwd ?? process.cwd(), env, encoding: 'utf8', timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        // `error.code` is the exit code, or a string (e.g. ENOENT) when the process never ran.
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
        resolve({ code, stdout, stderr })
      },
    )
  })
}

/** A throwaway app directory with its own config and home, and the `tenantry` command run in it. */
export interface CliProject {
  /** The directory: it holds `tenantry.config.mjs`, and the command runs here. */
  readonly path: string
  /** The config file. */
  readonly config: string
  /** `TENANTRY_HOME` for every run: `<path>/home`. */
  readonly home: string
  /**
   * Runs `tenantry` in the project (see `runCliCaptured`). The caller's own Tenantry settings
   * (`TENANTRY_CATALOG_URL`, `TENANTRY_SECRET_KEY`, `TENANTRY_DEBUG`) are left out; `env` adds to that.
   */
  cli(args: readonly string[], env?: Record<string, string | undefined>): Promise<CliRun>
  /** Removes the directory and everything the runs left in it. */
  cleanup(): void
}

/**
 * Makes a temporary app directory whose `tenantry.config.mjs` is `config` (the module's source,
 * `export default { … }`), for testing what the command does with an app's config.
 *
 * @example
 * const project = createCliProject(`export default { migrations: { tenant: {} } }\n`)
 * afterAll(() => project.cleanup())
 * expect((await project.cli(['tenant', 'create', 'acme'])).code).toBe(0)
 */
export function createCliProject(config: string, prefix = 'tenantry-cli-'): CliProject {
  const path = mkdtempSync(join(tmpdir(), prefix))
  const file = join(path, 'tenantry.config.mjs')
  writeFileSync(file, config)
  const home = join(path, 'home')
  const base = { TENANTRY_HOME: home, TENANTRY_CATALOG_URL: undefined, TENANTRY_DEBUG: undefined, TENANTRY_SECRET_KEY: undefined }
  return {
    path,
    config: file,
    home,
    cli: (args, env = {}) => runCliCaptured(args, { cwd: path, env: { ...base, ...env } }),
    cleanup: () => rmSync(path, { recursive: true, force: true }),
  }
}
