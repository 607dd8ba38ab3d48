import { createServer } from 'node:net'
import { createTenantry, loadConfig, type Logger, type ResolvedConfig, type Tenantry } from 'tenantry'
import { createApp, type CreateAppOptions, type TenantryApp } from './app.js'

export interface StartServerOptions {
  /** @default loadConfig() (tenantry.config.ts, honouring TENANTRY_HOME and TENANTRY_CATALOG_URL) */
  config?: ResolvedConfig
  /** An open Tenantry to serve; closed with the server only if this function opened it. */
  tenantry?: Tenantry
  /** `0` picks a free port. @default Number(process.env.PORT ?? 3000) */
  port?: number
  /** @default process.env.HOST ?? '127.0.0.1' */
  host?: string
  /** Close on SIGINT/SIGTERM. @default true */
  handleSignals?: boolean
  /** Passed through to `createApp`. */
  app?: Omit<CreateAppOptions, 'tenantry'>
}

export interface RunningServer {
  app: TenantryApp
  tenantry: Tenantry
  /** e.g. `http://127.0.0.1:3000` */
  url: string
  /** Stops accepting requests, waits for those in flight, then closes Tenantry (if opened here). */
  close(): Promise<void>
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
    await app.listen({ port, host })
  } catch (error) {
    if (ownsTenantry) await tenantry.close()
    throw error
  }

  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      await app!.close()
      if (ownsTenantry) await tenantry.close()
    })())
  const onSignal = (signal: NodeJS.Signals) => {
    app!.log.info({ signal }, 'shutting down')
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        app!.log.error({ err: error }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  if (options.handleSignals ?? true) {
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  }
  return { app: app!, tenantry, url, close }
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
