import { createServer } from 'node:net'
import { createTenantry, loadConfig, type Logger, type ResolvedConfig, type Tenantry } from 'tenantry'
import { createApp, type CreateAppOptions, type TenantryApp } from './app.js'
import { parseServerConfig } from './server-config.js'
import { repairAllHalfMade } from './tenants/half-made.js'
import { Organizations } from './tenants/organizations.js'

/** After the shutdown bound, how long closing Tenantry may still take before the process exits anyway. */
const HARD_EXIT_GRACE_MS = 2_000

export interface StartServerOptions {
  /** @default loadConfig() (tenantry.config.ts, honouring TENANTRY_HOME and TENANTRY_CATALOG_URL) */
  config?: ResolvedConfig
  /** An open Tenantry to serve; closed with the server only if this function opened it. */
  tenantry?: Tenantry
  /** `0` picks a free port. @default Number(process.env.PORT ?? 3000) */
  port?: number
  /** @default process.env.HOST ?? '127.0.0.1' */
  host?: string
  /**
   * Shut down on SIGTERM and SIGINT, then exit: new connections are refused at once, requests
   * in flight get `server.http.shutdownTimeout` to finish, the ones left are then cut off, and
   * the process exits (0 when everything finished, 1 otherwise). A second signal exits at once.
   * @default true
   */
  handleSignals?: boolean
  /** Passed through to `createApp`. */
  app?: Omit<CreateAppOptions, 'tenantry'>
  /**
   * Before listening, repair what a crash left half-made (`repairAllHalfMade`: creates cut
   * short rolled back, deletes finished, organizations with no tenant linked or removed,
   * staging files removed), as `tenantry doctor --fix` does. Only what sat untouched for
   * `graceMs`, with no live operation, is touched; `false` skips it.
   * @default { graceMs: DEFAULT_REPAIR_GRACE_MS } (5 minutes)
   */
  repair?: { graceMs?: number } | false
}

export interface RunningServer {
  app: TenantryApp
  tenantry: Tenantry
  /** e.g. `http://127.0.0.1:3000` */
  url: string
  /**
   * Stops accepting connections, waits up to `server.http.shutdownTimeout` for requests in
   * flight, closes the connections left, then closes Tenantry (if opened here). Resolves to
   * `true` when every request finished in time.
   */
  close(): Promise<boolean>
}

/** Opens Tenantry, builds the app and listens. */
export async function startServer(options: StartServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? process.env.HOST ?? '127.0.0.1'
  const requested = options.port ?? Number(process.env.PORT ?? 3000)
  // The auth base URL needs the real port before the app is built.
  const port = requested === 0 ? await freePort(host) : requested
  // Tenantry opens before the app (and its logger) exists: it logs through the app's logger once there is one.
  let app: TenantryApp | undefined
  const tenantry = options.tenantry ?? (await createTenantry(options.config ?? (await loadConfig()), { logger: appLogger(() => app) }))
  const ownsTenantry = !options.tenantry
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host
  const url = `http://${urlHost}:${port}`
  try {
    app = await createApp({ baseURL: url, ...options.app, tenantry })
    if (options.repair !== false) await repairAtStart(tenantry, app, options.repair?.graceMs)
    await app.listen({ port, host })
    // The serving process ships SQLite tenants' WAL for point-in-time restore (backups.pointInTime).
    tenantry.pointInTime?.start()
  } catch (error) {
    if (ownsTenantry) await tenantry.close()
    throw error
  }

  const running = app
  const { shutdownTimeout } = parseServerConfig(tenantry.config.server).http
  let closing: Promise<boolean> | undefined
  let signalled = false
  const close = () =>
    (closing ??= (async () => {
      // Closed by its owner rather than a signal: the signals are the process's own again.
      if (!signalled) {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
      // app.close() stops listening at once (a new connection is refused), closes idle keep-alive
      // connections, answers 503 on busy ones, and waits for the requests in flight: up to the bound.
      let drained = true
      const bound = setTimeout(() => {
        drained = false
        running.log.warn({ shutdownTimeoutMs: shutdownTimeout }, 'shutdown: requests still in flight at the bound are cut off')
        running.server.closeAllConnections()
      }, shutdownTimeout)
      try {
        await running.close()
      } finally {
        clearTimeout(bound)
      }
      if (ownsTenantry) await tenantry.close()
      return drained
    })())

  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      running.log.warn({ signal }, 'second signal during shutdown: exiting now')
      process.exit(1)
    }
    signalled = true
    running.log.info({ signal, shutdownTimeoutMs: shutdownTimeout }, 'shutting down: refusing new connections, finishing requests in flight')
    // Whatever hangs after the connections are cut (a statement that ignores its cancel, a
    // pool that never drains) must not keep the process past the bound for long.
    setTimeout(() => {
      running.log.error('shutdown did not finish after the bound: exiting')
      process.exit(1)
    }, shutdownTimeout + HARD_EXIT_GRACE_MS).unref()
    close().then(
      (drained) => process.exit(drained ? 0 : 1),
      (error: unknown) => {
        running.log.error({ err: error }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  if (options.handleSignals ?? true) {
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  }
  return { app: running, tenantry, url, close }
}

/** The start's repair of half-made state: a failure is logged, and does not keep the server from serving. */
async function repairAtStart(tenantry: Tenantry, app: TenantryApp, graceMs: number | undefined): Promise<void> {
  try {
    const organizations = new Organizations(app.auth, tenantry, app.log)
    const actions = await repairAllHalfMade(tenantry, { organizations, ...(graceMs === undefined ? {} : { graceMs }) })
    if (actions.length) app.log.warn({ repaired: actions }, `start: repaired ${actions.length} thing(s) a crash left half-made`)
  } catch (error) {
    app.log.error({ err: error }, 'start: repairing half-made state failed; run tenantry doctor --fix')
  }
}

/** Core's logger, writing to the app's pino logger (tagged `component: tenantry`) once the app exists. */
function appLogger(app: () => TenantryApp | undefined): Logger {
  const at = (level: keyof Logger) => (facts: Record<string, unknown>, message: string) =>
    app()?.log[level]({ component: 'tenantry', ...facts }, message)
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, host, () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}
