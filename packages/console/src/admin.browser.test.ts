import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type TenantryConfig } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir, type TestDatabase } from 'tenantry/testing'
import { signUp, verifyEmail, type Client, type TestServer } from '@tenantry/server/testing'
import { collections } from '../../../examples/cv-builder/collections.js'
import { checkPage, PASSWORD, signInOnPage, startConsole, withChromium, type ConsoleHarness } from './testing/console.fixture.js'

/**
 * The operator's admin walked in Chromium against real pending work:
 *
 * - Migrations: tenants provisioned (through core, on the same catalog) with the CV builder's
 *   migrations, while the server runs with one more (`0003_labels`), so they are really behind;
 *   one of them already has a `labels` table, so the migration fails there. The run is held
 *   after its first tenant (the migration awaits a gate this test opens), so the test sees the
 *   progress the page polls while the run's request is still open; a page that only updated at
 *   the end would never show it.
 * - Data sources: add a SQLite source, test it, change its capacity; a Postgres source with a
 *   wrong database shows the API's message (without the password); a good one is added.
 * - Settings: a tenant on that Postgres source gets a read-only URL, shown once with a copy
 *   button, that reads the tenant's table and cannot write; revoked, it stops working. A
 *   SQLite tenant's section points to SQL-over-HTTP instead.
 */
const ADMIN = 'opsadmin@example.com'
const OWNER = 'pgowner@example.com'
const postgres = await findPostgres()
const PG_ID = `console_pg_${process.pid}`

/**
 * The migration the server has and the provisioned tenants lack. While the test's gate (a
 * folder) exists, each run counts itself in (`calls`), the first through goes on, and the others
 * wait until the gate has an `open` file. Files, not process memory: the fan-out may migrate SQLite
 * tenants in worker threads.
 */
const labelsMigration = (gate: string) => `import { appendFileSync, existsSync, mkdirSync } from 'node:fs'
const GATE = ${JSON.stringify(gate)}
export async function up(db) {
  if (existsSync(GATE)) {
    appendFileSync(GATE + '/calls', '.')
    // The broken tenant (it has a labels table) never goes first: the first result is a success.
    const broken = await db.selectFrom('sqlite_master').select('name').where('name', '=', 'labels').executeTakeFirst()
    let first = !broken
    try { if (first) mkdirSync(GATE + '/first') } catch { first = false }
    const deadline = Date.now() + 60_000
    while (!first && !existsSync(GATE + '/open') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  }
  await db.schema.createTable('labels').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('name', 'text').execute()
}
`

describe.skipIf(!withChromium('the admin browser tests'))('the admin in Chromium: migrations, data sources, read-only access', () => {
  const dir = tempDir('tenantry-admin-console-')
  const v1 = join(dir.path, 'migrations-v1')
  const v2 = join(dir.path, 'migrations-v2')
  const gate = join(dir.path, 'gate')
  const config = (migrations: string, home?: string): TenantryConfig => ({
    ...(home ? { home } : {}),
    migrations: { tenant: migrations },
    dataSources: [{ id: 'local', engine: 'sqlite', mode: 'shared' }],
    defaults: { isolation: 'database', dataSource: 'local' },
    server: { collections },
  })
  let harness: ConsoleHarness
  let server: TestServer
  let admin: Client
  let database: TestDatabase | undefined

  beforeAll(async () => {
    const cv = fileURLToPath(new URL('../../../examples/cv-builder/migrations', import.meta.url))
    cpSync(cv, v1, { recursive: true })
    cpSync(cv, v2, { recursive: true })
    writeFileSync(join(v2, '0003_labels.mjs'), labelsMigration(gate))
    harness = await startConsole({ config: config(v2), root: dir.path, env: { TENANTRY_PLATFORM_ADMINS: ADMIN, TENANTRY_TRUSTED_ORIGINS: '' } })
    server = harness.server
    admin = await signUp(server, ADMIN, PASSWORD)
    await verifyEmail(server, ADMIN)

    // Tenants made with the first set of migrations, on the server's own catalog: behind by one.
    const older = await createTenantry(config(v1, server.home))
    try {
      for (const slug of ['mig_alpha', 'mig_bravo', 'mig_charlie', 'mig_broken']) await older.createTenant({ slug })
      // Only this tenant has a labels table already: 0003_labels fails there.
      await older.withTenant('mig_broken', () => older.db().schema.createTable('labels').addColumn('legacy', 'text').execute())
    } finally {
      await older.close()
    }
  }, 240_000)

  afterAll(async () => {
    rmSync(gate, { recursive: true, force: true })
    if (server) {
      for (const t of await server.tenantry.catalog.listTenants()) {
        if (t.placement.dataSourceId === PG_ID) await server.tenantry.deleteTenant(t.slug, { purge: true }).catch(() => {})
      }
    }
    await harness?.stop()
    await database?.drop()
    if ('url' in postgres) await dropAppRoles(postgres.url, [PG_ID])
    dir.cleanup()
  })

  /** A chart's numbers as its table under the disclosure holds them: one row per bar, its label first. */
  async function chartRows(page: Page, title: string): Promise<string[][]> {
    const rows = chartFigure(page, title).locator('tbody tr')
    const out: string[][] = []
    for (let i = 0; i < (await rows.count()); i++) out.push(await rows.nth(i).locator('th, td').allTextContents())
    return out
  }
  /** The figure holding the chart named `title` (an SVG with role img). */
  const chartFigure = (page: Page, title: string) => page.locator('figure.chart').filter({ has: page.getByRole('img', { name: title, exact: true }) })

  async function signedInAdmin(): Promise<{ page: Page; close: () => Promise<void> }> {
    const { context, page } = await harness.open()
    await signInOnPage(page, ADMIN)
    await page.getByRole('link', { name: 'Admin' }).waitFor()
    return { page, close: () => context.close() }
  }

  it('migrations: 4 tenants behind on 0003_labels; a run shows live per-tenant progress, the failing tenant with its error, and the summary', async () => {
    const { page, close } = await signedInAdmin()
    try {
      await page.getByRole('link', { name: 'Admin' }).click()
      await page.getByRole('navigation', { name: 'Admin' }).getByRole('link', { name: 'Migrations' }).click()
      await page.getByRole('heading', { name: 'Admin: migrations' }).waitFor()
      await expect.poll(() => page.getByText(/^5 tenants; 4 behind\./).isVisible()).toBe(true)
      const labels = page.getByRole('row', { name: /0003_labels/ })
      expect(await labels.getByRole('cell').allInnerTexts()).toEqual(['1', '4'])
      const behind = page.getByRole('heading', { name: 'Tenants behind' }).locator('xpath=following-sibling::ul[1]')
      expect((await behind.getByRole('listitem').allInnerTexts()).sort()).toEqual(
        ['mig_alpha', 'mig_bravo', 'mig_broken', 'mig_charlie'].map((slug) => `${slug} (ready): 0003_labels`),
      )
      await checkPage(page, 'admin-migrations-behind')

      // Hold the run after its first tenant, until the page has shown that tenant's result.
      mkdirSync(gate)
      const release = () => writeFileSync(join(gate, 'open'), '')
      const calls = () => (existsSync(join(gate, 'calls')) ? readFileSync(join(gate, 'calls'), 'utf8').length : 0)
      try {
        await page.getByRole('button', { name: 'Run migrations' }).click()
        await page.getByRole('heading', { name: 'Running…' }).waitFor()
        const progress = page.getByRole('progressbar', { name: 'Tenants migrated' })
        await expect.poll(() => progress.getAttribute('value'), { timeout: 15_000 }).toBe('1')
        expect(await progress.getAttribute('max')).toBe('4')
        const results = page.getByRole('region', { name: 'Running…' }).getByRole('listitem')
        await expect.poll(() => results.count()).toBe(1)
        expect(await page.getByText(/^1 tenant done of 4;/).isVisible()).toBe(true)
        // The progress chart: its latest bar is 1 migrated, 0 failed, 3 pending (its table, and the SVG's segments).
        await expect.poll(async () => (await chartRows(page, 'Fan-out progress')).at(-1)?.slice(1)).toEqual(['1', '0', '3'])
        const lastBar = chartFigure(page, 'Fan-out progress').locator('g.chart-bar').last()
        expect(await lastBar.locator('rect[data-series="migrated"]').getAttribute('data-value')).toBe('1')
        expect(await lastBar.locator('rect[data-series="pending"]').getAttribute('data-value')).toBe('3')
        expect(await lastBar.locator('rect[data-series="failed"]').count()).toBe(0)
        // The other three wait at the gate: the run is really still going.
        await expect.poll(calls).toBe(4)
        expect(await page.getByRole('heading', { name: 'Running…' }).isVisible()).toBe(true)
        await checkPage(page, 'admin-migrations-running')
      } finally {
        release()
      }

      await page.getByRole('heading', { name: /^Last run/ }).waitFor({ timeout: 30_000 })
      await expect.poll(() => page.getByText('5 tenants: 1 up to date, 3 migrated, 1 failed').isVisible()).toBe(true)
      const run = page.getByRole('region', { name: /^Last run/ })
      const failure = run.getByRole('listitem').filter({ hasText: 'mig_broken' })
      expect(await failure.innerText()).toMatch(/^mig_broken: error .*labels.*already exists/)
      for (const slug of ['mig_alpha', 'mig_bravo', 'mig_charlie']) {
        expect(await run.getByRole('listitem').filter({ hasText: slug }).innerText()).toBe(`${slug}: success (0003_labels)`)
      }
      // The chart ends where the run did: 3 migrated, 1 failed, none pending; earlier readings stay as bars.
      await expect.poll(async () => (await chartRows(page, 'Fan-out progress')).at(-1)?.slice(1)).toEqual(['3', '1', '0'])
      expect((await chartRows(page, 'Fan-out progress')).length).toBeGreaterThanOrEqual(2)
      expect(await page.getByRole('img', { name: 'Fan-out progress' }).getAttribute('aria-describedby')).toBeTruthy()
      expect(await chartFigure(page, 'Fan-out progress').locator('desc').textContent()).toMatch(/^3 migrated, 1 failed, 0 pending after [\d.]+ s/)
      // The catalog agrees: only the failing tenant is still behind.
      expect((await server.tenantry.migrationStatus()).behind.map((b) => b.slug)).toEqual(['mig_broken'])
      await checkPage(page, 'admin-migrations-failed')
    } finally {
      rmSync(gate, { recursive: true, force: true })
      await close()
    }
  }, 180_000)

  it('data sources: add a SQLite source, test it, change its capacity; a wrong Postgres server shows the API message; a good one is added', async () => {
    const { page, close } = await signedInAdmin()
    try {
      await page.goto('/admin/data-sources')
      await page.getByRole('heading', { name: 'Admin: data sources' }).waitFor()
      const local = page.locator('tr[data-id="local"]')
      await local.waitFor()
      expect(await local.getByRole('cell').nth(0).innerText()).toBe('sqlite')
      // The config's source: its tenants (the admin's own and the four above), no capacity edit.
      await expect.poll(() => local.locator('td.tenants').innerText()).toBe('5 (no limit)')
      expect(await local.getByRole('button', { name: 'Change capacity of local' }).count()).toBe(0)

      const form = page.getByRole('form', { name: 'Add a data source' })
      const directory = join(dir.path, 'eu-files')
      await form.getByLabel('Id', { exact: true }).fill('eu_files')
      await form.getByLabel('Engine', { exact: true }).selectOption('sqlite')
      await form.getByLabel('Directory', { exact: true }).fill(directory)
      await form.getByLabel('Capacity (tenants)').fill('2')
      await form.getByLabel('Region', { exact: true }).fill('eu-west')
      await form.getByRole('button', { name: 'Add data source' }).click()
      const eu = page.locator('tr[data-id="eu_files"]')
      await eu.waitFor()
      expect(await eu.locator('td.tenants').innerText()).toBe('0 / 2')
      const meter = eu.getByRole('meter', { name: 'Tenants on eu_files: 0 of 2' })
      expect(await meter.getAttribute('max')).toBe('2')
      expect(await eu.getByRole('cell').nth(2).innerText()).toBe(directory)

      await eu.getByRole('button', { name: 'Test eu_files' }).click()
      await expect.poll(() => eu.getByRole('status', { name: 'Test of eu_files' }).innerText()).toMatch(/^Answered in [\d.]+ ms: SQLite directory /)

      await eu.getByRole('button', { name: 'Change capacity of eu_files' }).click()
      await eu.getByLabel('New capacity of eu_files (empty: unlimited)').fill('5')
      await eu.getByRole('button', { name: 'Save' }).click()
      await expect.poll(() => eu.locator('td.tenants').innerText()).toBe('0 / 5')
      expect(await eu.getByRole('meter').getAttribute('max')).toBe('5')
      expect((await server.tenantry.catalog.findDataSource('eu_files'))?.capacity).toBe(5)
      // A tenant placed there fills the meter.
      expect((await admin.post('/api/admin/tenants', { slug: 'on_eu_files', dataSource: 'eu_files' })).status).toBe(201)
      await page.reload()
      await expect.poll(() => page.locator('tr[data-id="eu_files"] td.tenants').innerText()).toBe('1 / 5')
      await checkPage(page, 'admin-data-sources-added')

      // The API's refusal, in the page: a duplicate id.
      await form.getByLabel('Id', { exact: true }).fill('eu_files')
      await form.getByRole('button', { name: 'Add data source' }).click()
      await expect.poll(() => form.locator('xpath=..').getByRole('alert').innerText()).toMatch(/already exists \(DATA_SOURCE_EXISTS\)/)

      if (!('url' in postgres)) return // (CI has Postgres: findPostgres throws there when it is missing)
      // Postgres: the URL field is a password field; a wrong database is the engine's message, without the password.
      const wrong = new URL(postgres.url)
      if (!wrong.password) wrong.password = 'console-pw-9c2e'
      wrong.pathname = '/tenantry_no_such_db'
      await form.getByLabel('Engine', { exact: true }).selectOption('postgres')
      expect(await form.getByLabel('Directory', { exact: true }).count()).toBe(0)
      const urlField = form.getByLabel('Connection URL')
      expect(await urlField.getAttribute('type')).toBe('password')
      await form.getByLabel('Id', { exact: true }).fill('pg_wrong')
      await urlField.fill(wrong.toString())
      await form.getByRole('button', { name: 'Add data source' }).click()
      const alert = form.locator('xpath=..').getByRole('alert')
      await expect.poll(() => alert.innerText()).toMatch(/tenantry_no_such_db.*\(DATA_SOURCE_TEST_FAILED\)/)
      expect(await alert.innerText()).not.toContain(decodeURIComponent(wrong.password))
      await checkPage(page, 'admin-data-sources-postgres-refused')

      database = await createTestDatabase(postgres.url, 'tenantry_console_ds')
      const good = new URL(database.url)
      if (!good.password) good.password = 'console-pw-9c2e'
      await form.getByLabel('Id', { exact: true }).fill(PG_ID)
      await urlField.fill(good.toString())
      await form.getByLabel('database', { exact: true }).uncheck()
      await form.getByLabel('row', { exact: true }).uncheck()
      await form.getByRole('button', { name: 'Add data source' }).click()
      const pgRow = page.locator(`tr[data-id="${PG_ID}"]`)
      await pgRow.waitFor({ timeout: 20_000 })
      expect(await pgRow.getByRole('cell').nth(2).innerText()).toMatch(new RegExp(`@${good.hostname}:\\d+/${database.name} \\(credentials sealed\\)$`))
      expect(await page.content()).not.toContain(decodeURIComponent(good.password))
      await pgRow.getByRole('button', { name: `Test ${PG_ID}` }).click()
      await expect.poll(() => pgRow.getByRole('status', { name: `Test of ${PG_ID}` }).innerText(), { timeout: 15_000 }).toMatch(/^Answered in/)
      await checkPage(page, 'admin-data-sources-postgres')
    } finally {
      await close()
    }
  }, 180_000)

  it('settings: a SQLite workspace is pointed to SQL-over-HTTP; a Postgres one grants a read-only URL (copy, reads, cannot write) and revokes it', async () => {
    // SQLite: the admin's own workspace.
    {
      const { page, close } = await signedInAdmin()
      try {
        await page.goto('/settings')
        const section = page.getByRole('region', { name: 'Read-only Postgres access' })
        await expect.poll(() => section.innerText()).toMatch(/SQLite database.*SQL over HTTP and a read-only token/s)
        expect(await section.getByRole('button').count()).toBe(0)
        expect(await section.getByRole('alert').count()).toBe(0)
        await checkPage(page, 'settings-read-only-sqlite')
      } finally {
        await close()
      }
    }
    if (!('url' in postgres) || !database) return // the data source is added by the test above
    const owner = await signUp(server, OWNER, PASSWORD)
    const created = await admin.post('/api/admin/tenants', { slug: 'acme_ro', name: 'Acme (Postgres)', isolation: 'schema', dataSource: PG_ID, ownerEmail: OWNER })
    expect(created.status, created.text).toBe(201)
    expect((await owner.post('/api/me/active-tenant', { slug: 'acme_ro' })).status).toBe(200)
    expect((await owner.post('/api/t/acme_ro/data/jobs', { company: 'Acme', title: 'Engineer', start_date: '2020-01-01' })).status).toBe(201)

    const { context, page } = await harness.open()
    try {
      await context.addCookies([...owner.cookies].map(([name, value]) => ({ name, value, url: server.url })))
      await page.goto('/settings')
      const section = page.getByRole('region', { name: 'Read-only Postgres access' })
      await section.getByRole('button', { name: 'Grant read-only access' }).click()
      const field = section.getByRole('textbox', { name: 'Read-only Postgres URL' })
      await field.waitFor()
      const url = await field.inputValue()
      expect(url).toMatch(/^postgres(ql)?:\/\//)
      await section.getByRole('button', { name: 'Copy Read-only Postgres URL' }).click()
      await expect.poll(() => section.getByText('Copied').isVisible()).toBe(true)
      expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(url)
      await checkPage(page, 'settings-read-only-postgres')

      const client = new pg.Client({ connectionString: url })
      await client.connect()
      try {
        expect((await client.query('select company, title from jobs')).rows).toEqual([{ company: 'Acme', title: 'Engineer' }])
        await expect(client.query("insert into jobs (company, title, start_date) values ('X', 'Y', '2021-01-01')")).rejects.toThrow(/permission denied|read-only/)
      } finally {
        await client.end()
      }

      await section.getByRole('button', { name: 'Revoke read-only access' }).click()
      await expect.poll(() => section.getByRole('status').first().innerText()).toMatch(/revoked/)
      expect(await section.getByRole('textbox', { name: 'Read-only Postgres URL' }).count()).toBe(0)
      const revoked = new pg.Client({ connectionString: url })
      await expect(revoked.connect()).rejects.toThrow()
      await revoked.end().catch(() => {})
    } finally {
      await context.close()
    }
  }, 120_000)
  it("usage: a tenant's metered usage per day as charts, one bar per day with usage, the same numbers as the API", async () => {
    // Metered days in the past (the meter's own catalog rows), so the chart has several bars.
    const tenant = (await server.tenantry.catalog.findTenantBySlug('mig_charlie'))!
    const dayAgo = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10)
    const seeded = [
      { day: dayAgo(6), counts: { requests: 40, statements: 90, rowsRead: 300, rowsWritten: 12, execMs: 5 } },
      { day: dayAgo(3), counts: { requests: 7, statements: 15, rowsRead: 21, rowsWritten: 0, execMs: 1 } },
      { day: dayAgo(1), counts: { requests: 120, statements: 260, rowsRead: 900, rowsWritten: 64, execMs: 9 } },
    ]
    await server.tenantry.catalog.addUsage(seeded.map((d) => ({ tenantId: tenant.id, ...d })))
    const api = await admin.request<{ days: Array<{ day: string; requests: number; rowsRead: number }> }>('GET', '/api/admin/tenants/mig_charlie/usage?days=30')
    expect(api.status, api.text).toBe(200)
    const days = api.body.days
    expect(days.length).toBeGreaterThanOrEqual(3)

    const { page, close } = await signedInAdmin()
    try {
      await page.goto('/admin')
      await page.getByRole('heading', { name: 'Admin: tenants' }).waitFor()
      await page.getByRole('button', { name: 'Usage of mig_charlie' }).click()
      const requests = chartFigure(page, 'Requests per day of mig_charlie')
      await requests.waitFor()
      for (const title of ['Requests', 'Statements', 'Rows read', 'Rows written']) {
        expect(await chartFigure(page, `${title} per day of mig_charlie`).locator('g.chart-bar').count(), title).toBe(days.length)
      }
      expect(await requests.locator('rect[data-series="requests"]').evaluateAll((rects) => rects.map((r) => Number(r.getAttribute('data-value'))))).toEqual(
        days.filter((d) => d.requests > 0).map((d) => d.requests),
      )
      expect(await chartRows(page, 'Rows read per day of mig_charlie')).toEqual(days.map((d) => [d.day.slice(5), String(d.rowsRead)]))
      for (const d of seeded) expect(days.find((x) => x.day === d.day)?.requests).toBeGreaterThanOrEqual(d.counts.requests)
      expect(await requests.locator('desc').textContent()).toMatch(new RegExp(`over ${days.length} days with usage`))
      // The table fallback opens under its disclosure.
      await requests.getByText('Requests per day of mig_charlie: table').click()
      expect(await requests.getByRole('table', { name: 'Requests per day of mig_charlie' }).isVisible()).toBe(true)
      await checkPage(page, 'admin-tenant-usage-charts')
    } finally {
      await close()
    }
  }, 120_000)
})
