import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { build } from 'vite'
import { expect } from 'vitest'
import { startTestServer, type StartTestServerOptions, type TestServer } from '@tenantry/server/testing'
import { haveChromium, launchChromium } from '../../../client/src/testing/chromium.fixture.js'

/**
 * What the console's browser tests share: a production build of the console, the real server
 * serving it at `/`, Debian's Chromium, a fresh browser profile per test, and `checkPage`
 * (a screenshot under test-results/console/ and axe-core with no serious or critical
 * violation). Node only: a `.fixture.ts`, never part of the console's build.
 */
const at = (path: string) => fileURLToPath(new URL(path, import.meta.url))
export const SHOTS = at('../../../../test-results/console')
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

export const PASSWORD = 'correct horse battery'
/** The repository's own config: the CV builder's collections on the embedded SQLite default. */
export const REPO_CONFIG = at('../../../../tenantry.config.ts')

/** Whether the console's browser tests can run (Chromium installed; under CI its absence fails). */
export const withChromium = (what = "the console's browser tests") => haveChromium(what)

type Violation = { id: string; impact: string | null; help: string; nodes: Array<{ target: unknown }> }

/** axe-core on the page as it is now: the serious and critical violations (expected none), and a screenshot. */
export async function checkPage(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.addScriptTag({ content: AXE })
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (context: unknown, options: unknown) => Promise<{ violations: Violation[] }> } }).axe
    const result = await axe.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] })
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target) }))
  })
  expect(
    violations.filter((v) => v.impact === 'serious' || v.impact === 'critical'),
    `${name}: axe-core`,
  ).toEqual([])
}

export interface ConsoleHarness {
  server: TestServer
  browser: Browser
  /** Errors thrown in any page (expected none: `stop()` checks). */
  errors: string[]
  /** A fresh browser profile (no cookies, no IndexedDB) on `path` (default `/`), its first heading shown. */
  open(options?: { viewport?: { width: number; height: number }; path?: string }): Promise<{ context: BrowserContext; page: Page }>
  /** Closes the browser and the server, removes the build, and checks no page threw. */
  stop(): Promise<void>
}

/** Builds the console (production React, as `npm start` serves it), starts the server on it and Chromium. */
export async function startConsole(options: StartTestServerOptions = {}): Promise<ConsoleHarness> {
  mkdirSync(SHOTS, { recursive: true })
  const dist = mkdtempSync(join(tmpdir(), 'tenantry-console-build-'))
  let server: TestServer | undefined
  let browser: Browser | undefined
  try {
    // vitest's NODE_ENV is `test`: the define makes it React's production build.
    await build({
      configFile: at('../../vite.config.ts'),
      root: at('../..'),
      mode: 'production',
      logLevel: 'warn',
      define: { 'process.env.NODE_ENV': '"production"' },
      build: { outDir: dist, emptyOutDir: true, sourcemap: false },
    })
    server = await startTestServer({ config: REPO_CONFIG, ...options, app: { ...options.app, consoleDir: dist } })
    browser = await launchChromium()
  } catch (error) {
    await browser?.close()
    await server?.stop()
    rmSync(dist, { recursive: true, force: true })
    throw error
  }
  const errors: string[] = []
  const running = { server, browser }
  return {
    ...running,
    errors,
    open: async ({ viewport = { width: 1280, height: 900 }, path = '/' } = {}) => {
      const context = await running.browser.newContext({ viewport, baseURL: running.server.url })
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: running.server.url })
      const page = await context.newPage()
      page.on('pageerror', (error) => errors.push(error.message))
      page.on('dialog', (dialog) => void dialog.accept())
      await page.goto(path)
      await page.getByRole('heading', { level: 1 }).first().waitFor()
      return { context, page }
    },
    stop: async () => {
      try {
        await running.browser.close()
        await running.server.stop()
      } finally {
        rmSync(dist, { recursive: true, force: true })
      }
      expect(errors).toEqual([])
    },
  }
}

/** Signs in on the console's sign-in page with email and password. */
export async function signInOnPage(page: Page, email: string, password = PASSWORD): Promise<void> {
  await page.goto('/sign-in')
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
}
