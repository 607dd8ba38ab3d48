import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { build } from 'vite'

/**
 * What the browser tests (the client's and the console's) share: Debian's Chromium driven by
 * playwright-core (never a downloaded browser; `scripts/ensure.mjs` installs the package under
 * `npm test` as root), a page script bundled by Vite, and a static server giving the page its
 * own origin. Node only: a `.fixture.ts`, left out of the package's build.
 */
export const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/**
 * Whether Chromium is installed. Under `CI=true` its absence fails the run (never a silent
 * skip); elsewhere the caller's browser tests skip and this says why.
 */
export function haveChromium(what: string): boolean {
  if (existsSync(CHROMIUM)) return true
  if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (scripts/ensure.mjs does as root)`)
  console.warn(`skipping ${what}: ${CHROMIUM} is missing (apt-get install -y chromium)`)
  return false
}

/** Headless Chromium. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true })
}

/** `source` (a module; absolute imports) bundled by Vite into one ES module for the page, as production would. */
export async function bundleForPage(source: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'tenantry-page-bundle-'))
  try {
    const entry = join(dir, 'entry.ts')
    writeFileSync(entry, source)
    const result = await build({
      configFile: false,
      logLevel: 'warn',
      root: dir,
      define: { 'process.env.NODE_ENV': '"production"' },
      build: { write: false, minify: false, target: 'es2022', lib: { entry, formats: ['es'], fileName: 'app' } },
    })
    const output = (Array.isArray(result) ? result[0] : result) as { output: Array<{ type: string; code?: string }> }
    return output.output.find((o) => o.type === 'chunk')!.code!
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A static server for a page running `script`, on its own origin (another port than Tenantry's). */
export async function servePage(script: string, title: string): Promise<{ origin: string; server: Server }> {
  const html = `<!doctype html><meta charset="utf-8"><title>${title}</title><script type="module" src="/app.js"></script>`
  const server = createServer((request, response) => {
    if (request.url === '/app.js') response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(script)
    else if (request.url === '/') response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html)
    else response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}
