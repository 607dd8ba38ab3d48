import { existsSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve, sep } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ServerInstance } from '../feature.js'

/**
 * The web console (`@tenantry/console`, a Vite build) served at `/`: its files as they are,
 * and `index.html` for any other GET that asks for HTML, so the console's own routes survive a
 * reload. The API keeps its paths and its JSON 404s: nothing under `API_PREFIXES` is ever
 * answered with the console. Without a build, `/` says how to make one instead of a 404.
 *
 * It answers from the app's not-found handler, so any API route (`GET /` is Hrana's WebSocket
 * endpoint, which hands plain GETs on to the not-found handler) always comes first.
 */

/** Paths that belong to the API (or its docs): an unknown one stays a JSON 404. */
export const API_PREFIXES = ['/api', '/v2', '/v3', '/v3-protobuf', '/openapi.json', '/healthz', '/metrics', '/docs'] as const

export interface ConsoleOptions {
  /**
   * The console's built files (with `index.html`). `false` serves no console.
   * @default $TENANTRY_CONSOLE_DIR, else the installed `@tenantry/console` package's `dist/`
   */
  dir?: string | false
  env?: NodeJS.ProcessEnv
}

/** Where the console's build is: `TENANTRY_CONSOLE_DIR`, else `@tenantry/console`'s `dist/` (when the package is installed). */
export function consoleDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.TENANTRY_CONSOLE_DIR) return resolve(env.TENANTRY_CONSOLE_DIR)
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@tenantry/console/package.json')), 'dist')
  } catch {
    return undefined
  }
}

const isApiPath = (path: string) => API_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`) || path.startsWith(`${p}?`))

/**
 * Whether the client asks for an HTML page: a browser navigating does (`text/html,…`); `fetch`,
 * curl and libSQL's clients (any type, or JSON) get the API's answers, so `GET /` without an
 * upgrade stays the API's 404 for them.
 */
const acceptsHtml = (request: FastifyRequest) => request.headers.accept?.includes('text/html') === true

const missingBuildPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Tenantry: console not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5">
<h1>The console is not built yet</h1>
<p>This Tenantry server is running: the API is at <a href="/docs">/docs</a> and <a href="/openapi.json">/openapi.json</a>.
The web console is served here once it is built:</p>
<pre><code>npm run build -w @tenantry/console</code></pre>
<p>or run <code>npm start</code>, which builds it when it is missing or stale.</p>
</body></html>
`

/** Answers the request with the console when it is one of the console's (and says so); `false` leaves it to the API's 404. */
export type ConsoleFallback = (request: FastifyRequest, reply: FastifyReply) => Promise<boolean>

/** Registers what serving files needs on `app` and answers the not-found handler's fallback. */
export async function consoleFallback(app: ServerInstance, options: ConsoleOptions = {}): Promise<ConsoleFallback> {
  if (options.dir === false) return async () => false
  const dir = options.dir !== undefined ? resolve(options.dir) : consoleDir(options.env)
  // `serve: false`: only `reply.sendFile`; the fallback decides what each path gets.
  await app.register(fastifyStatic, { root: dir ?? process.cwd(), serve: false })

  /** A file of the build under `dir`, relative to it, or undefined (never a path outside it). */
  const fileOf = (path: string): string | undefined => {
    if (!dir) return undefined
    let decoded: string
    try {
      decoded = decodeURIComponent(path)
    } catch {
      return undefined
    }
    const full = resolve(dir, `.${decoded}`)
    if (!full.startsWith(dir + sep)) return undefined
    return existsSync(full) && statSync(full).isFile() ? full.slice(dir.length + 1) : undefined
  }

  return async (request, reply) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return false
    const path = request.url.split('?')[0]!
    if (isApiPath(path)) return false
    if (!dir || !existsSync(join(dir, 'index.html'))) {
      if (!acceptsHtml(request)) return false
      await reply.status(503).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(missingBuildPage)
      return true
    }
    const file = path === '/' ? undefined : fileOf(path)
    if (file) {
      // Vite names what is under assets/ by content hash: those never change.
      if (file.startsWith(`assets${sep}`)) await reply.sendFile(file, dir, { maxAge: '365d', immutable: true })
      else await reply.header('cache-control', 'no-cache').sendFile(file, dir, { cacheControl: false })
      return true
    }
    // A console route (e.g. /settings): the app's page, which routes by itself. A missing asset stays a 404.
    if (!acceptsHtml(request) || /\.[a-z0-9]+$/i.test(path)) return false
    await reply.status(200).header('cache-control', 'no-cache').sendFile('index.html', dir, { cacheControl: false })
    return true
  }
}
