import { spawn, spawnSync } from 'node:child_process'
import { createReadStream, createWriteStream, existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { once } from 'node:events'
import { TenantryError } from '../../errors.js'
import { quoteIdentifier } from '../../identifiers.js'
import type { EngineBackups, EnginePlacement, Isolation } from '../engine.js'
import type { PostgresContext } from './isolation-kind.js'
import { readOnlyRoleName, tenantStorageName } from './postgres-names.js'

/** The schema a restore renames the tenant's old one to, inside its transaction, and drops before it commits. */
const OLD_SCHEMA_SUFFIX = '_restore_old'

/**
 * Backups of schema and database tenants with Postgres's own tools: `pg_dump -Fc` of the
 * tenant's schema (schema isolation) or of the `public` schema of its database (database
 * isolation), with ownership and privileges (the tenant role's grants, default privileges).
 *
 * A restore turns the dump into SQL (`pg_restore -f`) and runs it with `psql` in one
 * transaction between a rename of the tenant's schema out of the way and a drop of the renamed
 * one: Postgres's DDL is transactional, so readers see the old schema until the commit, and a
 * failure (or a crash) part-way rolls everything back and leaves the old data serving. The
 * tenant's read-only role, if it has one now, gets its grants back afterwards (`regrant`):
 * a role that was dropped since the backup is not named by the restore.
 *
 * The binaries are the installed Postgres's (`pg_config --bindir`, else `PATH`); the password
 * goes through `PGPASSWORD`, never on a command line.
 */
export function postgresBackups(context: PostgresContext, regrant: (placement: EnginePlacement) => Promise<void>): EngineBackups {
  const isolations: Isolation[] = ['schema', 'database']
  /** Where the tenant's tables are, and the connection to reach them. */
  function target(placement: EnginePlacement): { schema: string; url: string } {
    if (!isolations.includes(placement.isolation)) {
      throw new TenantryError('UNSUPPORTED_PLACEMENT', `Postgres ${placement.isolation} tenants are backed up row by row, not with pg_dump`)
    }
    const name = tenantStorageName(placement.tenantId)
    if (placement.locator !== name) throw new TenantryError('INVALID_IDENTIFIER', `Invalid Postgres locator ${JSON.stringify(placement.locator)}`)
    return placement.isolation === 'schema'
      ? { schema: name, url: context.connection.url() }
      : { schema: 'public', url: context.connection.url({ database: name }) }
  }
  return {
    isolations,
    method: 'pg_dump',
    async dump(placement, destination, options = {}) {
      const { schema, url } = target(placement)
      if (existsSync(destination)) throw new TenantryError('INVALID_OPTION', `${destination} exists: a backup never replaces a file`)
      const onProgress = options.onProgress
      try {
        if (!onProgress) {
          await run('pg_dump', ['--format=custom', `--schema=${schema}`, `--file=${destination}`], url)
          return
        }
        // --verbose says when it starts on each table's rows: the progress, table by table.
        let tables = 0
        onProgress({ step: 'dump', done: 0, unit: 'tables' })
        await run('pg_dump', ['--verbose', '--format=custom', `--schema=${schema}`, `--file=${destination}`], url, (line) => {
          const table = /^pg_dump: dumping contents of table "(?:[^"]*\.)?(.*)"$/.exec(line)?.[1]
          if (table !== undefined) onProgress({ step: 'dump', table, done: ++tables, unit: 'tables' })
          return line.startsWith('pg_dump: ') && !/^pg_dump: (error|warning|detail|hint):/.test(line)
        })
      } catch (error) {
        await rm(destination, { force: true })
        throw error
      }
    },
    async restore(placement, source, options = {}) {
      const { schema, url } = target(placement)
      const script = `${source}.${process.pid}.${Date.now().toString(36)}.sql`
      const rewritten = `${script}.rewritten`
      options.onProgress?.({ step: 'restore' })
      try {
        await run('pg_restore', [`--file=${script}`, source], undefined).catch((error: unknown) => {
          throw new TenantryError('INVALID_BACKUP', `${source} is not a pg_dump archive pg_restore can read: ${(error as Error).message}`, { cause: error })
        })
        await rewrite(script, rewritten, placement, options.from)
        const old = quoteIdentifier(`${schema}${OLD_SCHEMA_SUFFIX}`)
        await run(
          'psql',
          [
            '--no-psqlrc',
            '--quiet',
            '--set=ON_ERROR_STOP=1',
            '--single-transaction',
            `--command=ALTER SCHEMA ${quoteIdentifier(schema)} RENAME TO ${old}`,
            `--file=${rewritten}`,
            `--command=DROP SCHEMA ${old} CASCADE`,
            ...(options.failBeforeCommit ? [`--command=DO $$ BEGIN RAISE EXCEPTION 'Injected failure before the restored data committed'; END $$`] : []),
          ],
          url,
        )
      } finally {
        await Promise.all([rm(script, { force: true }), rm(rewritten, { force: true })])
      }
      await regrant(placement)
    },
  }
}

/**
 * Copies the restore script, leaving out what names the tenant's read-only role (granted again
 * after the restore, if the role exists) and, for a restore as another tenant, renaming the
 * backed-up tenant's schema and role (`t_<old id>`, `t_<old id>_app`) to the new tenant's outside the rows'
 * COPY data: tenant ids are random, so nothing else in the DDL names them.
 */
async function rewrite(from: string, to: string, placement: EnginePlacement, source: EnginePlacement | undefined): Promise<void> {
  const oldName = tenantStorageName(source?.tenantId ?? placement.tenantId)
  const newName = tenantStorageName(placement.tenantId)
  const readOnly = new RegExp(`\\b${readOnlyRoleName(source?.tenantId ?? placement.tenantId)}\\b`)
  const out = createWriteStream(to, { mode: 0o600 })
  let inCopy = false
  const write = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain')
  }
  for await (const line of createInterface({ input: createReadStream(from), crlfDelay: Infinity })) {
    if (inCopy) {
      if (line === '\\.') inCopy = false
      await write(`${line}\n`)
      continue
    }
    if (/^COPY .* FROM stdin;$/.test(line)) inCopy = true
    if (readOnly.test(line)) continue
    await write(`${oldName === newName ? line : line.split(oldName).join(newName)}\n`)
  }
  out.end()
  await once(out, 'finish')
}

/** The directory of the installed Postgres's binaries, once per process: `undefined` means "find them on PATH". */
let bindir: string | undefined | null = null

function binary(name: string): string {
  if (bindir === null) {
    const found = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' })
    const dir = found.status === 0 ? found.stdout.trim() : ''
    bindir = dir && existsSync(join(dir, name)) ? dir : undefined
  }
  return bindir === undefined ? name : join(bindir, name)
}

/**
 * Runs a Postgres tool against `url` (its password in `PGPASSWORD`); rejects with what it wrote to stderr.
 * `onLine` hears each line of stderr (`--verbose` progress) and answers whether it was progress only, left out of the error.
 */
async function run(tool: 'pg_dump' | 'pg_restore' | 'psql', args: string[], url: string | undefined, onLine?: (line: string) => boolean): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env }
  const finalArgs = [...args]
  if (url !== undefined) {
    const parsed = new URL(url)
    if (parsed.password) env.PGPASSWORD = decodeURIComponent(parsed.password)
    parsed.password = ''
    finalArgs.push(`--dbname=${parsed.toString()}`)
  }
  const child = spawn(binary(tool), finalArgs, { env, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  const keep = (text: string) => {
    if (stderr.length < 16_384) stderr += text
  }
  if (onLine) createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (line) => onLine(line) || keep(`${line}\n`))
  else child.stderr.setEncoding('utf8').on('data', keep)
  const [code] = (await Promise.race([
    once(child, 'close'), // after stderr is read to its end
    once(child, 'error').then(([error]) => {
      const err = error as NodeJS.ErrnoException
      if (err.code === 'ENOENT') {
        throw new TenantryError('INVALID_CONFIG', `${tool} was not found (neither in \`pg_config --bindir\` nor on PATH): install the PostgreSQL client tools of the server's version`)
      }
      throw err
    }),
  ])) as [number | null]
  if (code !== 0) {
    throw new TenantryError('INTERNAL', `${tool} failed (exit ${String(code)}): ${stderr.trim().replace(/postgres(ql)?:\/\/[^\s]*/g, '<url>') || 'no message'}`)
  }
}
