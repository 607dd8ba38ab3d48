import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { afterAll, describe, it } from 'vitest'
import type { FanOutReport, MigrationStatus, TenantRecord } from 'tenantry'
import { tempDir } from 'tenantry/testing'
import { runCliCaptured, type CliRun } from '@tenantry/cli/testing'

// The real built CLI, run from the repo root so that the repo's own tenantry.config.ts is used.
const REPO = fileURLToPath(new URL('../../../', import.meta.url))

const dirs: Array<ReturnType<typeof tempDir>> = []
afterAll(() => dirs.forEach((dir) => dir.cleanup()))

/** A fresh TENANTRY_HOME. */
function newHome(): string {
  const dir = tempDir('tenantry-cli-')
  dirs.push(dir)
  return dir.path
}

function cli(home: string, ...args: string[]): Promise<CliRun> {
  return runCliCaptured(args, { cwd: REPO, env: { TENANTRY_HOME: home, TENANTRY_CATALOG_URL: undefined, TENANTRY_DEBUG: undefined } })
}

/** Runs a command that must succeed and parses its JSON output. */
async function json<T>(home: string, ...args: string[]): Promise<T> {
  const run = await cli(home, ...args, '--json')
  if (run.code !== 0) throw new Error(`tenantry ${args.join(' ')} exited ${run.code}: ${run.stderr}`)
  return JSON.parse(run.stdout) as T
}

const tenantFiles = (home: string) => (existsSync(join(home, 'tenants')) ? readdirSync(join(home, 'tenants')).filter((f) => f.endsWith('.db')) : [])

/** A config beside the repo's: the example app's two migrations (already applied, so no-ops here) plus `extra`. */
function writeConfig(home: string, name: string, extra: string): string {
  const path = join(home, `${name}.config.mjs`)
  writeFileSync(
    path,
    `const done = { up: async () => {} }
export default { migrations: { tenant: { '0001_jobs_and_highlights': done, '0002_highlight_indexes': done, ${extra} } } }\n`,
  )
  return path
}

// Each test runs the real command twenty-odd times, a node process each: on a busy two-core
// machine that alone takes a minute, so the budget is per test, not per command.
const SUITE = { timeout: 180_000 }

describe.concurrent('tenantry CLI', SUITE, () => {
  it('creates, lists, shows, suspends, resumes, deletes and purges a tenant', async ({ expect }) => {
    const home = newHome()
    const created = await json<TenantRecord>(home, 'tenant', 'create', 'acme', '--name', 'Acme Inc')
    expect(created).toMatchObject({ slug: 'acme', name: 'Acme Inc', status: 'ready', purgedAt: null })
    expect(created.placement).toEqual({ isolation: 'database', dataSourceId: 'local', locator: `${created.id}.db` })
    expect(tenantFiles(home)).toEqual([`${created.id}.db`])

    expect(await json<TenantRecord[]>(home, 'tenant', 'list')).toEqual([created])
    const table = await cli(home, 'tenant', 'list')
    expect(table.stdout.split('\n')[0]).toMatch(/^SLUG\s+STATUS\s+ISOLATION\s+DATA SOURCE\s+CREATED$/)
    expect(table.stdout).toMatch(/acme\s+ready\s+database\s+local\s+\d{4}-/)

    const shown = await json<{ tenant: TenantRecord; ledger: Array<{ migration: string }>; pending: string[]; auditLog: Array<{ action: string; actor: string }> }>(
      home, 'tenant', 'show', 'acme',
    )
    expect(shown.tenant).toEqual(created)
    // The app's migrations, then Tenantry's steps for the declared collections (listed by name): the search index, the write ledger.
    expect(shown.ledger.map((m) => m.migration)).toEqual(['0001_jobs_and_highlights', '0002_highlight_indexes', expect.stringMatching(/^tenantry_search\./), 'tenantry_writes.v1'])
    expect(shown.pending).toEqual([])
    expect(shown.auditLog.map((e) => e.action)).toEqual(['tenant.create.started', 'tenant.create.succeeded'])
    expect(shown.auditLog[0]!.actor).toMatch(/^cli/)
    expect((await cli(home, 'tenant', 'show', 'acme')).stdout).toMatch(/Migrations: 4 applied, 0 pending[\s\S]*tenant\.create\.succeeded/)

    expect(await json<TenantRecord>(home, 'tenant', 'suspend', 'acme')).toMatchObject({ status: 'suspended' })
    const refused = await cli(home, 'sql', 'acme', 'select 1')
    expect(refused).toMatchObject({ code: 1, stderr: 'tenantry: Tenant "acme" is suspended\n' })
    expect(await json<TenantRecord>(home, 'tenant', 'resume', 'acme')).toMatchObject({ status: 'ready' })

    expect(await json<TenantRecord>(home, 'tenant', 'delete', 'acme')).toMatchObject({ status: 'deleted', purgedAt: null })
    expect(tenantFiles(home)).toHaveLength(1)
    expect((await cli(home, 'tenant', 'create', 'acme')).stderr).toMatch(/^tenantry: Tenant slug "acme" is already taken/)

    const purged = await json<TenantRecord>(home, 'tenant', 'delete', 'acme', '--purge')
    expect(purged).toMatchObject({ id: created.id, status: 'deleted', operation: 'purge' })
    expect(purged.purgedAt).not.toBeNull()
    expect(tenantFiles(home)).toEqual([])
    expect(await json<TenantRecord[]>(home, 'tenant', 'list')).toEqual([])
    // The purge freed the slug.
    expect((await json<TenantRecord>(home, 'tenant', 'create', 'acme')).id).not.toBe(created.id)
  })

  it('--dry-run checks a create and creates nothing', async ({ expect }) => {
    const home = newHome()
    expect(await json(home, 'tenant', 'create', 'acme', '--dry-run')).toEqual({
      dryRun: true, slug: 'acme', name: 'acme', isolation: 'database', dataSource: 'local',
    })
    expect((await cli(home, 'tenant', 'create', 'acme', '--dry-run')).stdout).toMatch(/^Dry run: would create tenant acme/)
    // The dry run still refuses what the create would refuse.
    const unsupported = await cli(home, 'tenant', 'create', 'acme', '--isolation', 'row', '--dry-run')
    expect(unsupported.code).toBe(1)
    expect(unsupported.stderr).toMatch(/^tenantry: .*not row\n$/)
    expect(tenantFiles(home)).toEqual([])
    expect((await cli(home, 'tenant', 'list')).stdout).toMatch(/^No tenants yet/)
  })

  it('refuses hostile slugs with exit 2 and one line, before anything is created', async ({ expect }) => {
    const home = newHome()
    const slugs = ['../x', 'a;drop table', 'Tenant', '\u0430cme', 'a'.repeat(64), '', 'admin', 'acme\n']
    const runs = await Promise.all([
      ...slugs.map((slug) => cli(home, 'tenant', 'create', slug)),
      cli(home, 'tenant', 'delete', 'admin', '--purge'),
      cli(home, 'sql', '../x', 'select 1'),
      cli(home, 'migrate', '--tenant', 'pg_x'),
    ])
    for (const run of runs) {
      expect(run.code).toBe(2)
      expect(run.stdout).toBe('')
      expect(run.stderr).toMatch(/^tenantry: Invalid tenant slug "[^\n]*": [^\n]+\n$/)
    }
    // Look-alike letters are shown for what they are.
    expect(runs[3]!.stderr).toContain('"\\u0430cme"')
    expect(runs[4]!.stderr).toContain('64 characters long')
    // Not even the catalog was opened.
    expect(readdirSync(home)).toEqual([])
    expect(await json(home, 'tenant', 'list')).toEqual([])
    expect(tenantFiles(home)).toEqual([])
  })

  it('runs SQL in one tenant, and another tenant does not see it', async ({ expect }) => {
    const home = newHome()
    await Promise.all([json(home, 'tenant', 'create', 'acme'), json(home, 'tenant', 'create', 'beta')])
    const insert = await cli(home, 'sql', 'acme', "insert into jobs (company, title, start_date) values ('Initech', 'CTO', '2020-01-01')")
    expect(insert).toMatchObject({ code: 0, stdout: '1 row affected\n' })

    const select = await cli(home, 'sql', 'acme', 'select company, title, end_date from jobs')
    expect(select.stdout).toBe('company  title  end_date\nInitech  CTO    NULL\n(1 row)\n')
    expect(await json(home, 'sql', 'acme', "update jobs set title = 'CEO'")).toEqual({ rows: [], numAffectedRows: 1 })
    expect(await json(home, 'sql', 'beta', 'select * from jobs')).toEqual({ rows: [] })

    const two = await cli(home, 'sql', 'acme', 'select 1; drop table jobs')
    expect(two.code).toBe(1)
    expect(two.stderr.trim().split('\n')).toHaveLength(1)
    expect(await json(home, 'sql', 'acme', 'select count(*) as n from jobs')).toEqual({ rows: [{ n: 1 }] })
    expect(await cli(home, 'sql', 'nope', 'select 1')).toMatchObject({ code: 1, stderr: 'tenantry: Tenant "nope" not found\n' })
  })

  it('migrate: --dry-run changes nothing, a run converges, status counts, a failure exits 1', async ({ expect }) => {
    const home = newHome()
    await Promise.all([json(home, 'tenant', 'create', 'acme'), json(home, 'tenant', 'create', 'beta')])
    const config = writeConfig(home, 'notes', `'0003_notes': { up: (db) => db.schema.createTable('notes').addColumn('id', 'integer').execute() }`)
    const behind = await json<MigrationStatus>(home, 'migrate', 'status', '--config', config)
    expect(behind).toMatchObject({ tenants: 2 })
    expect(behind.lock).toBeUndefined()
    expect(behind.migrations).toEqual([
      { name: '0001_jobs_and_highlights', appliedTenants: 2, pendingTenants: 0 },
      { name: '0002_highlight_indexes', appliedTenants: 2, pendingTenants: 0 },
      { name: '0003_notes', appliedTenants: 0, pendingTenants: 2 },
    ])
    expect(behind.behind.map((t) => [t.slug, t.pending]).sort()).toEqual([['acme', ['0003_notes']], ['beta', ['0003_notes']]])

    const dry = await json<{ dryRun: true; tenants: FanOutReport }>(home, 'migrate', '--dry-run', '--config', config)
    expect(dry.tenants.results.map((r) => [r.slug, r.applied]).sort()).toEqual([['acme', ['0003_notes']], ['beta', ['0003_notes']]])
    expect((await cli(home, 'migrate', '--dry-run', '--config', config)).stdout).toMatch(/acme: would apply 0003_notes[\s\S]*Nothing was changed/)
    expect(await json(home, 'migrate', 'status', '--config', config)).toEqual(behind)
    expect(await json(home, 'sql', 'acme', "select name from sqlite_master where name = 'notes'")).toEqual({ rows: [] })

    const run = await cli(home, 'migrate', '--config', config, '--concurrency', '1')
    expect(run.code).toBe(0)
    expect(run.stderr.split('\n').sort()).toEqual(['', '  migrated acme: 0003_notes', '  migrated beta: 0003_notes'])
    expect(run.stdout).toMatch(/^Catalog: up to date\.\nTenants: 2 migrated, 0 failed, 0 skipped, 0 already up to date, of 2/)
    expect((await cli(home, 'migrate', 'status', '--config', config)).stdout).toMatch(/0003_notes\s+2\s+0[\s\S]*2 tenants; all up to date/)

    const failing = writeConfig(home, 'boom', `'0003_notes': { up: async () => {} }, '0004_boom': { up: async () => { throw new Error('boom') } }`)
    const failed = await cli(home, 'migrate', '--tenant', 'acme', '--config', failing, '--json')
    expect(failed.code).toBe(1)
    const report = (JSON.parse(failed.stdout) as { tenants: FanOutReport }).tenants
    expect(report.results).toEqual([{ tenantId: expect.any(String), slug: 'acme', status: 'error', applied: [], error: expect.stringContaining('boom') }])
    expect(failed.stderr).toBe('tenantry: 1 of 1 tenants failed to migrate; a re-run retries them\n')
  })

  it('refuses a second migration runner with its message, and status names the holder', async ({ expect }) => {
    const home = newHome()
    expect((await cli(home, 'migrate', '--catalog-only')).stdout).toMatch(/^Catalog: applied /)
    const at = new Date().toISOString()
    const catalog = new Database(join(home, 'catalog.db'))
    catalog
      .prepare('insert into locks (name, holder, pid, host, acquired_at, heartbeat_at) values (?, ?, ?, ?, ?, ?)')
      .run('tenant-migrations', 'other-runner', process.pid, hostname(), at, at)
    catalog.close()

    const run = await cli(home, 'migrate')
    expect(run.code).toBe(1)
    expect(run.stderr).toBe(`tenantry: Another migration runner is active (pid ${process.pid} on ${hostname()}, since ${at}); wait for it to finish\n`)
    expect((await json<MigrationStatus>(home, 'migrate', 'status')).lock).toEqual({ pid: process.pid, host: hostname(), since: at })
    expect((await cli(home, 'migrate', 'status')).stdout).toContain(`A migration run is active: pid ${process.pid}`)
  })

  it('start --demo sets up a seeded demo tenant once; a second start changes nothing', async ({ expect }) => {
    const home = newHome()
    const first = await cli(home, 'start', '--demo', '--no-server')
    expect(first.code).toBe(0)
    expect(first.stdout).toContain("Created tenant demo and seeded it with the CV builder example's data.")
    expect(first.stdout).toContain(`catalog    ${join(home, 'catalog.db')}`)
    expect(first.stdout).toMatch(/Try:\n {2}node packages\/cli\/bin\/tenantry\.js tenant show demo/)
    const tenants = await json<TenantRecord[]>(home, 'tenant', 'list')
    expect(tenants.map((t) => [t.slug, t.status])).toEqual([['demo', 'ready']])
    const jobs = await json(home, 'sql', 'demo', 'select company from jobs order by id')
    expect(jobs).toEqual({ rows: [{ company: 'Ada Labs' }, { company: 'Ledgerly' }] })

    const second = await cli(home, 'start', '--demo', '--no-server')
    expect(second.code).toBe(0)
    expect(second.stdout).not.toContain('Created tenant')
    expect(await json(home, 'tenant', 'list')).toEqual(tenants)
    expect(await json(home, 'sql', 'demo', 'select company from jobs order by id')).toEqual(jobs)
    expect(tenantFiles(home)).toEqual([`${tenants[0]!.id}.db`])
  })

  it('exits 2 on a wrong command line and 1 on a failure, with one line and no stack trace', async ({ expect }) => {
    const home = newHome()
    const usage = await Promise.all([
      cli(home, 'frobnicate'),
      cli(home, 'tenant', 'list', '--bogus'),
      cli(home, 'tenant', 'create'),
      cli(home, 'migrate', '--concurrency', '0'),
      cli(home, 'migrate', '--catalog-only', '--tenant', 'acme'),
      cli(home, 'sql', 'acme', '  '),
    ])
    for (const run of usage) {
      expect(run.code).toBe(2)
      expect(run.stderr).toMatch(/^tenantry: [^\n]+\n$/)
    }
    expect(usage[0]!.stderr).toBe("tenantry: unknown command 'frobnicate'\n")
    expect(readdirSync(home)).toEqual([])

    const missing = await cli(home, 'tenant', 'show', 'nope')
    expect(missing).toMatchObject({ code: 1, stdout: '', stderr: 'tenantry: Tenant "nope" not found\n' })
    const missingConfig = await cli(home, 'tenant', 'list', '--config', join(home, 'nope.config.ts'))
    expect(missingConfig.code).toBe(1)
    expect(missingConfig.stderr).toMatch(/^tenantry: Config file not found: [^\n]+\n$/)
  })
})

// Run one after another, after the suite above: more CLI processes at once only slow them all.
describe('tenantry CLI: one word per concept, start without a demo, warnings', SUITE, () => {
  it('start without --demo creates no tenant: an app never gets one unasked', async ({ expect }) => {
    const home = newHome()
    const run = await cli(home, 'start', '--no-server')
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('0 tenants:')
    expect(run.stdout).not.toContain('demo')
    expect(run.stdout).toMatch(/Try:\n {2}node packages\/cli\/bin\/tenantry\.js tenant create acme/)
    expect(await json(home, 'tenant', 'list')).toEqual([])
    expect(tenantFiles(home)).toEqual([])
  })

  it('data-source is the command; datasource, its old spelling, still works', async ({ expect }) => {
    const home = newHome()
    const directory = join(home, 'extra')
    const added = await json<{ id: string; engine: string }>(home, 'data-source', 'add', 'extra', '--engine', 'sqlite', '--directory', directory)
    expect(added).toMatchObject({ id: 'extra', engine: 'sqlite' })
    const listed = await json<Array<{ id: string }>>(home, 'datasource', 'list')
    expect(listed.map((s) => s.id).sort()).toEqual(['extra', 'local'])
    const help = await cli(home, '--help')
    expect(help.stdout).toMatch(/^\s+data-source\b/m)
    expect(help.stdout).not.toMatch(/^\s+datasource\b/m)
    expect((await cli(home, 'data-source', 'test', 'extra')).stdout).toMatch(/^Data source extra answered/)
  })

  it('tenant read-only-access (alias readonly-url) refuses a SQLite tenant with one line', async ({ expect }) => {
    const home = newHome()
    await json(home, 'tenant', 'create', 'acme')
    for (const name of ['read-only-access', 'readonly-url']) {
      const run = await cli(home, 'tenant', name, 'acme')
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(/^tenantry: Tenant "acme" has database isolation on sqlite, which offers no read-only access[^\n]*\n$/)
    }
    expect((await cli(home, 'tenant', '--help')).stdout).toMatch(/read-only-access\|readonly-url/)
  })

  it('prints what Tenantry handled without failing as one warning line on stderr, as JSON under --json', async ({ expect }) => {
    const home = newHome()
    const failing = writeConfig(home, 'boom', `'0003_boom': { up: async () => { throw new Error('boom') } }`)
    expect((await cli(home, 'migrate', '--catalog-only')).code).toBe(0)
    // Recording the failed create fails too: before, that error vanished without a word.
    const catalog = new Database(join(home, 'catalog.db'))
    catalog.exec(`CREATE TRIGGER refuse_failed BEFORE UPDATE OF status ON tenants WHEN NEW.status = 'failed'
      BEGIN SELECT RAISE(ABORT, 'failed status refused'); END`)
    catalog.close()

    const text = await cli(home, 'tenant', 'create', 'acme', '--config', failing)
    expect(text.code).toBe(1)
    expect(text.stdout).toBe('')
    const [warning, error, ...rest] = text.stderr.split('\n')
    expect(warning).toMatch(/^tenantry: warning: Recording a failed create failed; [^\n]*: failed status refused \(tenantId=t[a-z0-9]{19} reason=boom\)$/)
    expect(error).toBe('tenantry: Creating tenant "acme" failed: boom')
    expect(rest).toEqual([''])

    const json = await cli(home, 'tenant', 'create', 'beta', '--config', failing, '--json')
    expect(json.code).toBe(1)
    expect(json.stdout).toBe('')
    const [line, last] = json.stderr.split('\n')
    expect(JSON.parse(line!)).toEqual({
      level: 'warn',
      message: expect.stringMatching(/^Recording a failed create failed/),
      tenantId: expect.stringMatching(/^t[a-z0-9]{19}$/),
      reason: 'boom',
      err: { type: 'SqliteError', message: 'failed status refused', code: 'SQLITE_CONSTRAINT_TRIGGER' },
    })
    expect(last).toBe('tenantry: Creating tenant "beta" failed: boom')
  })
})
