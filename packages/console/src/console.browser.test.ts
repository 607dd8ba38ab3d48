import { createClient as createLibsqlClient } from '@libsql/client'
import type { BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, signUp, verifyEmail, type TestServer } from '@tenantry/server/testing'
import { checkPage, PASSWORD, startConsole, withChromium, type ConsoleHarness } from './testing/console.fixture.js'

/**
 * The console walked in real Chromium (Debian's package, never a downloaded browser) against
 * a real server serving the console's fresh build at `/`: the CV builder anonymously (IndexedDB,
 * at 375 px) and signed in, sign-up, integrations (a read-only token that then works with
 * `@libsql/client`), and the admin's tenants. On every page axe-core must find no serious or
 * critical violation, and a screenshot is kept under test-results/console/.
 */
const ADMIN = 'admin@example.com'

describe.skipIf(!withChromium())('the console in Chromium', () => {
  let harness: ConsoleHarness
  let server: TestServer

  /** A fresh browser profile on the console: no cookies, no IndexedDB. */
  const open = (viewport?: { width: number; height: number }): Promise<{ context: BrowserContext; page: Page }> => harness.open({ viewport })

  /** The job's card in the list. */
  const jobCard = (page: Page, title: string) => page.locator('li.job', { has: page.getByRole('heading', { name: new RegExp(title) }) })

  async function addJob(page: Page, job: { company: string; title: string; start: string; location?: string; end?: string }) {
    await page.getByRole('button', { name: 'Add job', exact: true }).click()
    const form = page.getByRole('form', { name: 'New job' })
    await form.getByLabel('Company').fill(job.company)
    await form.getByLabel('Title').fill(job.title)
    if (job.location) await form.getByLabel('Location').fill(job.location)
    await form.getByLabel('Start date').fill(job.start)
    if (job.end) await form.getByLabel('End date (empty: current)').fill(job.end)
    await form.getByRole('button', { name: 'Add job' }).click()
    await jobCard(page, job.title).waitFor()
  }

  beforeAll(async () => {
    harness = await startConsole({ env: { TENANTRY_PLATFORM_ADMINS: ADMIN, TENANTRY_TRUSTED_ORIGINS: '' } })
    server = harness.server
  }, 180_000)

  afterAll(async () => {
    await harness?.stop()
  })

  it('anonymous, at 375 px: the CV builder keeps jobs and highlights in this browser ("Stored locally")', async () => {
    const { context, page } = await open({ width: 375, height: 812 })
    try {
      await expect.poll(() => page.getByText('Stored locally').isVisible()).toBe(true)
      // Keyboard: the first Tab reaches the skip link.
      await page.keyboard.press('Tab')
      expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content')
      await checkPage(page, 'cv-builder-anonymous-empty')

      await addJob(page, { company: 'Acme', title: 'Staff engineer', start: '2021-03-01', location: 'Lyon' })
      await addJob(page, { company: 'Globex', title: 'Engineer', start: '2017-01-01', end: '2021-02-28', location: 'Paris' })
      const acme = jobCard(page, 'Staff engineer')
      await acme.getByRole('button', { name: 'Add highlight to Staff engineer at Acme' }).click()
      await acme.getByLabel('Highlight', { exact: true }).fill('Cut the p99 latency of the billing API')
      await acme.getByLabel('Skills (comma-separated)').fill('Go, Postgres')
      await acme.getByLabel('Metric').fill('-40%')
      await acme.getByRole('button', { name: 'Add highlight' }).click()
      await acme.getByText('Cut the p99 latency of the billing API').waitFor()
      await expect.poll(() => acme.getByText('Skills: Go, Postgres.').isVisible()).toBe(true)
      await checkPage(page, 'cv-builder-anonymous')

      // Search: by a job's text, and by a highlight's (which finds its job).
      await page.getByRole('searchbox', { name: 'Search' }).fill('globex')
      await expect.poll(() => page.locator('li.job').count()).toBe(1)
      expect(await jobCard(page, 'Engineer').isVisible()).toBe(true)
      await page.getByRole('searchbox', { name: 'Search' }).fill('p99 latency')
      // Wait for the new result, not the count: the previous search also showed one job.
      await expect.poll(() => acme.isVisible()).toBe(true)
      expect(await page.locator('li.job').count()).toBe(1)
      await page.getByRole('searchbox', { name: 'Search' }).fill('')
      // Filters: current roles only; a location.
      await page.getByLabel('Current roles only').check()
      await expect.poll(() => page.locator('li.job').count()).toBe(1)
      await page.getByLabel('Current roles only').uncheck()
      await page.getByLabel('Location').first().fill('Paris')
      await expect.poll(() => page.locator('li.job h2').allInnerTexts()).toEqual(['Engineer at Globex'])
      await page.getByLabel('Location').first().fill('')
      await expect.poll(() => page.locator('li.job').count()).toBe(2)

      // Edit, then delete.
      await jobCard(page, 'Engineer').getByRole('button', { name: 'Edit Engineer at Globex' }).click()
      const edit = page.getByRole('form', { name: 'Edit Engineer at Globex' })
      await edit.getByLabel('Title').fill('Senior engineer')
      await edit.getByRole('button', { name: 'Save job' }).click()
      await jobCard(page, 'Senior engineer').waitFor()
      // A value the data layer refuses shows its message, not a blank page.
      await jobCard(page, 'Senior engineer').getByRole('button', { name: 'Edit Senior engineer at Globex' }).click()
      const bad = page.getByRole('form', { name: 'Edit Senior engineer at Globex' })
      await bad.getByLabel('Company').evaluate((input) => input.removeAttribute('maxlength'))
      await bad.getByLabel('Company').fill('x'.repeat(201))
      await bad.getByRole('button', { name: 'Save job' }).click()
      await expect.poll(() => bad.getByRole('alert').innerText()).toMatch(/VALIDATION_FAILED/)
      await bad.getByRole('button', { name: 'Cancel' }).click()
      await jobCard(page, 'Senior engineer').getByRole('button', { name: 'Delete Senior engineer at Globex' }).click()
      await expect.poll(() => page.locator('li.job').count()).toBe(1)

      // IndexedDB: still there after a reload.
      await page.reload()
      await acme.waitFor()
      expect(await page.locator('li.job').count()).toBe(1)
      expect(await acme.getByText('Cut the p99 latency of the billing API').isVisible()).toBe(true)
      // Code splitting: the landing page loads no other page's code (sign-in, settings, admin…).
      const scripts = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.endsWith('.js')))
      expect(scripts.length).toBeGreaterThan(0)
      expect(scripts.filter((s) => /\/assets\/(Admin|Settings|Members|SignIn)/.test(s))).toEqual([])
    } finally {
      await context.close()
    }
  }, 120_000)

  it('sign up, then the CV builder works in the workspace ("Stored in your workspace"); integrations: a read-only token that @libsql/client can use', async () => {
    const { context, page } = await open()
    try {
      // Anonymous data first: the first sign-in moves it into the workspace (the claim).
      await addJob(page, { company: 'Hooli', title: 'Intern', start: '2015-06-01', end: '2015-09-01' })
      const hooli = jobCard(page, 'Intern')
      await hooli.getByRole('button', { name: 'Add highlight to Intern at Hooli' }).click()
      await hooli.getByLabel('Highlight', { exact: true }).fill('Wrote the compression benchmark')
      await hooli.getByRole('button', { name: 'Add highlight' }).click()
      await hooli.getByText('Wrote the compression benchmark').waitFor()

      await page.getByRole('link', { name: 'Sign in' }).click()
      await page.getByRole('heading', { name: 'Sign in' }).waitFor()
      // The API's message for a wrong password, not a blank page.
      await page.getByLabel('Email').fill('nobody@example.com')
      await page.getByLabel('Password').fill('wrong password')
      await page.getByRole('button', { name: 'Sign in', exact: true }).click()
      await expect.poll(() => page.getByRole('alert').innerText()).toMatch(/INVALID_EMAIL_OR_PASSWORD/)
      await checkPage(page, 'sign-in')

      await page.getByRole('link', { name: 'Create one' }).click()
      await page.getByRole('heading', { name: 'Create an account' }).waitFor()
      await page.getByLabel('Name').fill('Dana')
      await page.getByLabel('Email').fill('dana@example.com')
      await page.getByLabel('Password').fill(PASSWORD)
      await checkPage(page, 'sign-up')
      // The claim's commit is held until the overlay has been seen (and checked).
      let release!: () => void
      const held = new Promise<void>((resolve) => (release = resolve))
      await page.route('**/claims/*/commit', async (route) => {
        await held
        await route.continue()
      })
      await page.getByRole('button', { name: 'Create account' }).click()
      const overlay = page.getByRole('dialog', { name: 'Moving your data…' })
      await overlay.waitFor({ timeout: 20_000 })
      await expect.poll(() => overlay.getByText('2 of 2 moved').isVisible()).toBe(true)
      await checkPage(page, 'moving-your-data')
      release()
      await expect.poll(() => page.getByText('Stored in your workspace').isVisible(), { timeout: 20_000 }).toBe(true)
      expect(await page.getByLabel('Workspace').locator('option').count()).toBe(1)
      // Claimed: the job and its highlight are in the workspace now.
      await jobCard(page, 'Intern').getByText('Wrote the compression benchmark').waitFor()
      expect(await page.getByRole('dialog', { name: 'Moving your data…' }).count()).toBe(0)

      await addJob(page, { company: 'Initech', title: 'Platform lead', start: '2022-05-01' })
      await checkPage(page, 'cv-builder-signed-in')

      // The job is on the server, in the user's tenant.
      const cookies = await context.cookies(server.url)
      const dana = new Client(server.url)
      for (const c of cookies) dana.cookies.set(c.name, c.value)
      const me = (await dana.get('/api/me')).body
      const slug = me.activeTenant.slug as string
      const jobs = (await dana.get(`/api/t/${slug}/data/jobs`)).body.items
      expect(jobs.map((j: { company: string }) => j.company)).toEqual(['Initech', 'Hooli'])
      const [claimed] = (await dana.get(`/api/t/${slug}/data/highlights`)).body.items
      expect(claimed).toMatchObject({ content: 'Wrote the compression benchmark', job_id: jobs[1].id })

      // Integrations: a read-only token, shown once, copied, then used from Node.
      await page.getByRole('link', { name: 'Settings' }).first().click()
      await page.getByRole('heading', { name: 'Integrations' }).waitFor()
      await page.getByRole('radio', { name: 'Read-only' }).check()
      await page.getByRole('button', { name: 'Create token' }).click()
      await page.getByRole('heading', { name: 'Token created: copy it now' }).waitFor()
      await page.getByRole('button', { name: 'Copy Token' }).click()
      await expect.poll(() => page.getByRole('status').filter({ hasText: 'Copied' }).count()).toBe(1)
      const copied = await page.evaluate<string>('navigator.clipboard.readText()')
      const shown = await page.getByRole('textbox', { name: 'Token', exact: true }).inputValue()
      expect(copied).toBe(shown)
      expect(copied).toMatch(/^tnt_/)
      const sqlUrl = await page.getByRole('textbox', { name: 'SQL over HTTP URL' }).inputValue()
      expect(sqlUrl).toBe(server.url)
      expect(await page.getByRole('textbox', { name: '@libsql/client snippet' }).inputValue()).toContain(copied)
      expect(await page.getByRole('textbox', { name: 'n8n HTTP Request node' }).inputValue()).toContain(`${server.url}/v2/pipeline`)
      await checkPage(page, 'settings-integrations')

      const db = createLibsqlClient({ url: sqlUrl, authToken: copied })
      try {
        const result = await db.execute('select company, title from jobs order by start_date desc')
        expect(result.rows.map((r) => [r.company, r.title])).toEqual([
          ['Initech', 'Platform lead'],
          ['Hooli', 'Intern'],
        ])
        // Read-only: a write is refused.
        await expect(db.execute("insert into jobs (company, title, start_date) values ('x', 'y', '2020-01-01')")).rejects.toThrow()
      } finally {
        db.close()
      }

      // The list shows its last use; revoking it stops it.
      await page.reload()
      const row = page.getByRole('row', { name: /n8n/ })
      await expect.poll(() => row.getByRole('cell').nth(3).innerText()).not.toBe('Never')
      await row.getByRole('button', { name: /^Revoke n8n/ }).click()
      await expect.poll(() => row.getByRole('cell').nth(5).innerText()).toMatch(/^Revoked/)
      const revoked = createLibsqlClient({ url: sqlUrl, authToken: copied })
      try {
        await expect(revoked.execute('select 1')).rejects.toThrow()
      } finally {
        revoked.close()
      }

      // The workspace switcher: an organization is a workspace of its own, with its own data.
      // Creating one makes it the session's active workspace (Better Auth's organization plugin).
      expect((await dana.post('/api/auth/organization/create', { name: 'Dana Co', slug: 'dana_co' })).status).toBe(200)
      await page.getByRole('link', { name: 'CV builder' }).click()
      await page.reload()
      await expect.poll(() => page.locator('.badge.remote').innerText()).toMatch(/Dana Co/)
      await expect.poll(() => page.getByText('0 of 0 jobs').isVisible()).toBe(true)
      await page.getByLabel('Workspace').selectOption(slug)
      await jobCard(page, 'Platform lead').waitFor()
      expect((await dana.get('/api/me')).body.activeTenant.slug).toBe(slug)
      await page.getByLabel('Workspace').selectOption('dana_co')
      await expect.poll(() => page.getByText('0 of 0 jobs').isVisible()).toBe(true)
      expect((await dana.get('/api/me')).body.activeTenant.slug).toBe('dana_co')
      await checkPage(page, 'cv-builder-organization')

      // Signing out goes back to local data.
      await page.getByRole('button', { name: 'Account' }).click()
      await page.getByRole('button', { name: 'Sign out' }).click()
      await expect.poll(() => page.getByText('Stored locally').isVisible()).toBe(true)
      // The local copy went once the server had it.
      await expect.poll(() => page.getByText('0 of 0 jobs').isVisible()).toBe(true)
    } finally {
      await context.close()
    }
  }, 120_000)

  it('admin: a platform admin lists tenants, creates, suspends and resumes one, reads its audit log, runs migrations, sees data sources', async () => {
    await signUp(server, ADMIN, PASSWORD)
    await verifyEmail(server, ADMIN)
    const { context, page } = await open()
    try {
      // Not signed in: no Admin link.
      expect(await page.getByRole('link', { name: 'Admin' }).count()).toBe(0)
      await page.goto('/sign-in')
      await page.getByLabel('Email').fill(ADMIN)
      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Sign in', exact: true }).click()
      await page.getByRole('link', { name: 'Admin' }).click()
      await page.getByRole('heading', { name: 'Admin: tenants' }).waitFor()
      // Every user's personal tenant is listed, with its isolation, data source and size.
      const inCatalog = (await server.tenantry.catalog.listTenants()).map((t) => t.slug).sort()
      await expect.poll(async () => (await page.locator('tbody tr[data-slug]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-slug')))).sort()).toEqual(inCatalog)

      await page.getByLabel('Slug').fill('acme_console')
      await page.getByLabel('Name', { exact: true }).fill('Acme (console)')
      await page.getByRole('button', { name: 'Create tenant' }).click()
      const row = page.locator('tr[data-slug="acme_console"]')
      await row.waitFor()
      await expect.poll(() => row.locator('.status').innerText()).toBe('ready')
      expect(await row.getByRole('cell').nth(1).innerText()).toBe('database')
      expect(await row.getByRole('cell').nth(2).innerText()).toBe('local')
      await expect.poll(() => row.getByRole('cell').nth(3).innerText()).toMatch(/KB|MB/)
      await checkPage(page, 'admin-tenants')

      // A slug the API refuses: its message, in the page.
      await page.getByLabel('Slug').fill('acme_console')
      await page.getByRole('button', { name: 'Create tenant' }).click()
      await expect.poll(() => page.getByRole('alert').innerText()).toMatch(/SLUG_TAKEN/)

      await row.getByRole('button', { name: 'Suspend acme_console' }).click()
      await expect.poll(() => row.locator('.status').innerText()).toBe('suspended')
      expect((await server.tenantry.catalog.findTenantBySlug('acme_console'))?.status).toBe('suspended')
      await checkPage(page, 'admin-tenant-suspended')
      await row.getByRole('button', { name: 'Resume acme_console' }).click()
      await expect.poll(() => row.locator('.status').innerText()).toBe('ready')
      expect((await server.tenantry.catalog.findTenantBySlug('acme_console'))?.status).toBe('ready')

      // Its audit log, from the catalog.
      await row.getByRole('button', { name: 'Audit log of acme_console' }).click()
      const log = page.getByRole('list', { name: 'Audit log of acme_console' })
      await expect.poll(() => log.innerText()).toMatch(/tenant\.create\.succeeded by user:/)

      // Migrations: every tenant has them all; a run reports each tenant.
      await page.getByRole('navigation', { name: 'Admin' }).getByRole('link', { name: 'Migrations' }).click()
      await page.getByRole('heading', { name: 'Admin: migrations' }).waitFor()
      const first = page.getByRole('row', { name: /0001_jobs_and_highlights/ })
      await first.waitFor()
      expect(await first.getByRole('cell').nth(0).innerText()).toBe(String((await server.tenantry.catalog.listTenants()).filter((t) => t.status === 'ready').length))
      expect(await first.getByRole('cell').nth(1).innerText()).toBe('0')
      await page.getByRole('button', { name: 'Run migrations' }).click()
      await page.getByRole('heading', { name: /^Last run/ }).waitFor()
      await expect.poll(() => page.getByText(/^\d+ tenants: \d+ up to date, 0 migrated, 0 failed/).isVisible()).toBe(true)
      await checkPage(page, 'admin-migrations')

      // Data sources.
      await page.getByRole('link', { name: 'Data sources' }).click()
      const local = page.getByRole('row', { name: /^local/ })
      await local.waitFor()
      expect(await local.getByRole('cell').nth(0).innerText()).toBe('sqlite')
      await checkPage(page, 'admin-data-sources')
    } finally {
      await context.close()
    }
  }, 120_000)

  it('signed in elsewhere (e.g. back from GitHub): the next load moves the local data into the workspace', async () => {
    const { context, page } = await open({ width: 375, height: 812 })
    try {
      await addJob(page, { company: 'Umbrella', title: 'Analyst', start: '2012-01-01', end: '2014-01-01' })
      const frank = await signUp(server, 'frank@example.com', PASSWORD)
      await context.addCookies([...frank.cookies].map(([name, value]) => ({ name, value, url: server.url })))
      await page.reload()
      await expect.poll(() => page.getByText('Stored in your workspace').isVisible(), { timeout: 20_000 }).toBe(true)
      await jobCard(page, 'Analyst').waitFor()
      const slug = (await frank.get('/api/me')).body.activeTenant.slug as string
      expect((await frank.get(`/api/t/${slug}/data/jobs`)).body.items.map((j: { company: string }) => j.company)).toEqual(['Umbrella'])
      // Once: another load moves nothing more.
      await page.reload()
      await jobCard(page, 'Analyst').waitFor()
      expect((await frank.get(`/api/t/${slug}/data/jobs/count`)).body.count).toBe(1)
    } finally {
      await context.close()
    }
  })

  it('a link followed while the sign-in finishes is where the user stays (the sign-in does not send them back to the start)', async () => {
    // Regression: the header's links show once the session is known, but the sign-in page still
    // awaited its claim and a second look-up, then went to `/` over whatever the user had opened.
    const email = 'quick.clicker@example.com'
    await signUp(server, email, PASSWORD)
    await verifyEmail(server, email)
    const { context, page } = await open()
    try {
      await page.goto('/sign-in')
      await page.getByLabel('Email').waitFor()
      // Hold the sign-in's second look-up of the user until the user has followed a link.
      let lookups = 0
      let release!: () => void
      const released = new Promise<void>((resolve) => (release = resolve))
      await page.route('**/api/me', async (route) => {
        if (route.request().method() === 'GET' && ++lookups === 2) await released
        await route.continue()
      })
      await page.getByLabel('Email').fill(email)
      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Sign in', exact: true }).click()
      await page.getByRole('link', { name: 'Settings' }).click()
      await page.getByRole('heading', { name: 'Settings' }).waitFor()
      await expect.poll(() => lookups).toBe(2)
      const second = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/me')
      release()
      await (await second).finished()
      // The sign-in's last step runs right after that answer: give it the page's next task.
      await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 100)))
      expect(new URL(page.url()).pathname).toBe('/settings')
      expect(await page.getByRole('heading', { name: 'Settings' }).isVisible()).toBe(true)
    } finally {
      await context.close()
    }
  })

  it('a reload on a console route gets the console; an unknown one says so', async () => {
    const { context, page } = await open({ width: 375, height: 812 })
    try {
      await page.goto('/settings')
      await page.getByRole('heading', { name: 'Settings' }).waitFor()
      await page.goto('/no-such-page')
      await page.getByRole('heading', { name: 'Page not found' }).waitFor()
      await checkPage(page, 'not-found')
    } finally {
      await context.close()
    }
  })
})
