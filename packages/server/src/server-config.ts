import { isIP } from 'node:net'
import { z } from 'zod'
import { COLLECTION_IDENTIFIER, collectionSchema, collectionsSchema, columnSchema, resolveCollections, TenantryError, type CollectionConfig, type ColumnConfig } from 'tenantry'
import { claimsConfigSchema } from './claims/claims-config.js'

/**
 * The collections' schema is core's (`tenantry`'s collections/declaration.ts): one strict
 * definition for `tenantry.collection(name)` and the data API, which this config reuses.
 */
export { columnSchema, collectionSchema }

/** Plan names: the collections' identifier rule. */
const identifier = z.string().regex(COLLECTION_IDENTIFIER, 'use lowercase a-z, 0-9 and "_", starting with a letter or "_"')

/**
 * How long slow or idle clients may hold a connection, and how long a shutdown may take. Every
 * value is in milliseconds. A client that sends its headers or body slower than this is cut
 * off (408), so a byte-a-second client cannot hold a socket, and a file descriptor, for long.
 */
export const httpConfigSchema = z
  .object({
    /** Longest wait for a request's headers, from the connection's first byte (Node's `headersTimeout`). @default 10000 */
    headersTimeout: z.number().int().positive().default(10_000),
    /** Longest wait for a whole request, headers and body (Node's `requestTimeout`). The handler's own time is not counted. @default 30000 */
    requestTimeout: z.number().int().positive().default(30_000),
    /**
     * A connection with no bytes either way for this long is closed (Fastify's `connectionTimeout`):
     * a backstop, which also ends a handler that answers nothing for that long. @default 120000
     */
    idleTimeout: z.number().int().positive().default(120_000),
    /** How long an idle keep-alive connection is kept for the client's next request. @default 5000 */
    keepAliveTimeout: z.number().int().positive().default(5_000),
    /** Requests one keep-alive connection may carry before the server closes it. @default 1000 */
    maxRequestsPerSocket: z.number().int().positive().default(1_000),
    /**
     * After SIGTERM or SIGINT: how long requests in flight may take to finish. New connections
     * are refused at once; at the bound the remaining ones are closed and the process exits.
     * @default 10000
     */
    shutdownTimeout: z.number().int().positive().default(10_000),
  })
  .strict()
  .refine((http) => http.headersTimeout <= http.requestTimeout, {
    message: 'headersTimeout must not be longer than requestTimeout',
    path: ['headersTimeout'],
  })

/** A plan: how many requests per `server.limits.window` a tenant, and each of its tokens, may make. */
export const planSchema = z
  .object({
    /** Requests of all of the tenant's callers together (sessions and tokens). @default 1200 */
    tenant: z.number().int().positive().default(1_200),
    /** Requests of one integration token, within the tenant's. @default 600 */
    token: z.number().int().positive().default(600),
  })
  .strict()

/**
 * Fair shares: request rates per tenant (by plan), per token, per signed-in user outside a
 * tenant and per IP address for callers with no credentials. Over a limit is `429
 * RATE_LIMITED` with `Retry-After`. Counted in Redis when `server.redis` (or
 * `TENANTRY_REDIS_URL`) is set, so the limits hold across server processes; in memory
 * otherwise.
 */
export const limitsConfigSchema = z
  .object({
    /** `false` turns rate limits off (benchmarks, a server behind a gateway that limits). @default true */
    enabled: z.boolean().default(true),
    /** The window the counts below are per, in milliseconds. @default 60000 */
    window: z.number().int().positive().default(60_000),
    /** Requests per window from one IP address without credentials (sign-in, sign-up, health, docs). @default 300 */
    anonymous: z.number().int().positive().default(300),
    /**
     * Sign-in attempts (`/api/auth/sign-in/*`, right or wrong) per window from one IP address,
     * counted by Better Auth in the catalog, so every server process on it shares the count.
     * Past it, `429` until the window ends. @default 10
     */
    signIn: z.number().int().positive().default(10),
    /** Requests per window of one signed-in user outside any tenant (`/api/me`, the admin API). @default 600 */
    user: z.number().int().positive().default(600),
    /**
     * How long a `429` answer is held before it is sent. A client that waits for `Retry-After`
     * (at least 1 s) loses nothing; one that retries at once, on many connections, is slowed to
     * one refusal per connection per this delay, instead of a flood of cheap refusals taking the
     * event loop that every tenant shares. 0 sends refusals at once. @default 1000
     */
    refusalDelayMs: z.number().int().min(0).max(10_000).default(1000),
    /** Plans by name. `default` applies to every tenant `tenants` does not name. @default { default: { tenant: 1200, token: 600 } } */
    plans: z.record(identifier, planSchema).default({}),
    /** The plan of a tenant, by slug, e.g. `{ acme: 'pro' }`. A tenant's own plan in the catalog (`tenantry.limits`) comes first. */
    tenants: z.record(z.string(), identifier).default({}),
  })
  .strict()

/**
 * SQL-over-HTTP's streams, and settings per tenant. What one statement may do (deadlines, row
 * and byte caps, executor processes, per-tenant statement shares) is the data source's
 * `rawSql`; a tenant's deadlines can be set here over it.
 */
export const sqlOverHttpConfigSchema = z
  .object({
    /** Open streams at most, across all tenants. @default 128 */
    maxStreams: z.number().int().positive().optional(),
    /** Open streams at most per tenant, so that one tenant cannot hold them all. @default a quarter of `maxStreams` */
    maxStreamsPerTenant: z.number().int().positive().optional(),
    /** Open streams at most per token. @default 8 */
    maxStreamsPerToken: z.number().int().positive().optional(),
    /** An idle stream is closed, and rolled back, after this many milliseconds. @default 10000 */
    streamIdleMs: z.number().int().positive().optional(),
    /** Hrana over WebSocket (`ws://`, `libsql://` URLs): caps per connection. */
    webSocket: z
      .object({
        /** Streams one connection may hold open (each also counts against the limits above). @default 8 */
        maxStreamsPerSocket: z.number().int().positive().optional(),
        /** Requests one connection may have waiting for their answer (`@libsql/client` runs up to 20 at once, three requests each). @default 128 */
        maxPendingRequests: z.number().int().positive().optional(),
        /** Largest message, in bytes; a larger one closes the connection (1009). @default 1048576 */
        maxMessageBytes: z.number().int().positive().optional(),
        /** A connection with nothing asked and nothing running is closed after this many milliseconds. @default 120000 */
        idleMs: z.number().int().positive().optional(),
        /** How often the server pings; a peer that missed the previous ping is cut off. @default 30000 */
        pingMs: z.number().int().positive().optional(),
      })
      .strict()
      .default({}),
    /** Per-tenant settings, by slug, over the data source's and the ones above; a tenant's own in the catalog (`tenantry.limits`) come first. */
    tenants: z
      .record(
        z.string(),
        z
          .object({
            /** Deadline of one statement, in milliseconds. */
            statementTimeoutMs: z.number().int().positive().optional(),
            /** Deadline of a transaction from its `BEGIN`, in milliseconds. */
            transactionTimeoutMs: z.number().int().positive().optional(),
            /** Open streams at most for this tenant. */
            maxStreams: z.number().int().positive().optional(),
            /** Statements this tenant may run at once (an open transaction counts as one). */
            maxStatements: z.number().int().positive().optional(),
          })
          .strict(),
      )
      .default({}),
  })
  .strict()

/**
 * The data API's deadlines. Lists, counts and writes run through `tenantry.bounded`: off the
 * event loop on SQLite, under a statement deadline everywhere. The data source's
 * `bounded.statementTimeoutMs` (2 s by default) applies unless a tenant's own is set here.
 */
export const dataApiConfigSchema = z
  .object({
    /** Per-tenant settings, by slug, over the data source's; a tenant's own in the catalog (`tenantry.limits`) come first. */
    tenants: z
      .record(
        z.string(),
        z
          .object({
            /** Deadline of one data API statement, in milliseconds. */
            statementTimeoutMs: z.number().int().positive().optional(),
          })
          .strict(),
      )
      .default({}),
  })
  .strict()

/** proxy-addr's names for address ranges (`loopback` is 127.0.0.1/8 and ::1/128, and so on). */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`, or a name of proxy-addr's (`loopback`). */
const proxyAddress = z.string().refine(
  (text) => {
    if (PROXY_RANGE_NAMES.has(text)) return true
    const [address, bits, ...rest] = text.split('/')
    const family = isIP(address ?? '')
    if (!family || rest.length) return false
    return bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))
  },
  { message: 'use an IP address, a CIDR range (10.0.0.0/8) or loopback, linklocal, uniquelocal' },
)

/**
 * Whose `X-Forwarded-For` the server believes (Fastify's `trustProxy`). The client address it
 * yields is what every limit by address counts by, Better Auth's sign-in throttle included:
 * `false` believes nobody (a client could otherwise claim a new address per attempt); behind a
 * reverse proxy, name the proxy's addresses, or `true` (every hop), or the number of hops.
 */
export const trustProxySchema = z.union([
  z.boolean(),
  z.number().int().min(1).max(32),
  proxyAddress,
  z.array(proxyAddress).min(1),
])

/** An origin as a browser sends it: scheme, host and port, no path. */
const origin = z
  .string()
  .refine((value) => URL.canParse(value) && new URL(value).origin === value, 'use an origin: scheme://host[:port], no path or trailing slash')

/**
 * Apps on other origins that may call the server from a browser (`@tenantry/client`). The same
 * origins are trusted by the sign-in and by the Origin check on cookie-authenticated writes.
 */
export const corsConfigSchema = z
  .object({
    /** Exact origins, e.g. `['https://app.example.com']`; `*` is not accepted. Credentials are allowed for these only. @default [] */
    origins: z.array(origin).default([]),
    /** How long a browser may cache a preflight's answer, in seconds. @default 600 */
    maxAge: z.number().int().min(0).max(86_400).default(600),
  })
  .strict()

/** The `server` section of `tenantry.config.ts`. */
export const serverConfigSchema = z
  .object({
    /** Public URL of the server (OAuth redirects, trusted origin). @default process.env.BETTER_AUTH_URL ?? `http://${host}:${port}` */
    baseURL: z.string().url().optional(),
    /** Collections served by the data API, by URL name. */
    collections: collectionsSchema.default({}),
    /** Emails of platform admins, besides `TENANTRY_PLATFORM_ADMINS`. */
    platformAdmins: z.array(z.string().email()).default([]),
    metrics: z
      .object({
        /** Tenants labelled by id in metrics; the rest are `other`. @default 20 */
        topTenants: z.number().int().min(0).max(1000).default(20),
        /**
         * The bearer token `/metrics` asks for (`Authorization: Bearer …`, Prometheus'
         * `authorization.credentials`). Without one (here or in `TENANTRY_METRICS_TOKEN`),
         * `/metrics` is not served at all (404): its series tell who the busy tenants are.
         */
        token: z.string().min(16, 'use at least 16 characters').optional(),
      })
      .strict()
      .default({ topTenants: 20 }),
    /** Timeouts and keep-alive limits of the HTTP server, and the shutdown bound. */
    http: httpConfigSchema.default(httpConfigSchema.parse({})),
    /**
     * Trust `X-Forwarded-For` from these proxies for the client's address: `false` (nobody),
     * `true` (any), a hop count, or addresses and CIDR ranges, e.g. `['10.0.0.0/8']`. @default false
     */
    trustProxy: trustProxySchema.default(false),
    /** Request rate limits per tenant (plans), token, user and IP address. */
    limits: limitsConfigSchema.default(limitsConfigSchema.parse({})),
    /** A Redis URL (`redis://…`) for limits shared by every server process. @default process.env.TENANTRY_REDIS_URL */
    redis: z.string().url().optional(),
    /** SQL-over-HTTP streams and per-tenant deadlines. */
    sqlOverHttp: sqlOverHttpConfigSchema.default(sqlOverHttpConfigSchema.parse({})),
    /** The data API's per-tenant deadlines. */
    dataApi: dataApiConfigSchema.default(dataApiConfigSchema.parse({})),
    /** Browser apps on other origins: CORS, and trusted for cookie-authenticated writes. */
    cors: corsConfigSchema.default(corsConfigSchema.parse({})),
    /** Claims of a browser's local data (chunk and claim bounds, commit deadline, cleanup). */
    claims: claimsConfigSchema.default(claimsConfigSchema.parse({})),
  })
  .strict()

export type { ColumnConfig, CollectionConfig }
export type PlanConfig = z.infer<typeof planSchema>
export type HttpConfig = z.infer<typeof httpConfigSchema>
export type LimitsConfig = z.infer<typeof limitsConfigSchema>
export type SqlOverHttpConfig = z.infer<typeof sqlOverHttpConfigSchema>
export type DataApiConfig = z.infer<typeof dataApiConfigSchema>
export type CorsConfig = z.infer<typeof corsConfigSchema>
export type ServerConfig = Omit<z.infer<typeof serverConfigSchema>, 'collections'> & {
  collections: Record<string, CollectionConfig>
}
/** What a config file may write in its `server` section. */
export type ServerConfigInput = z.input<typeof serverConfigSchema>

/** Validates the config's `server` section; a mistake is `INVALID_CONFIG` naming the path. */
export function parseServerConfig(section: Record<string, unknown> = {}): ServerConfig {
  const result = serverConfigSchema.safeParse(section)
  if (!result.success) {
    const issue = result.error.issues[0]!
    throw new TenantryError('INVALID_CONFIG', `server.${issue.path.join('.')}: ${issue.message}`)
  }
  const collections: Record<string, CollectionConfig> = resolveCollections(result.data.collections)
  const limits = result.data.limits
  const plans: Record<string, PlanConfig> = { default: planSchema.parse({}), ...limits.plans }
  // `config` is what `tenantry tenant limits --plan config` means: follow the config again.
  if (plans.config) throw new TenantryError('INVALID_CONFIG', 'server.limits.plans.config: "config" is reserved; name the plan otherwise')
  for (const [slug, plan] of Object.entries(limits.tenants)) {
    if (!plans[plan]) throw new TenantryError('INVALID_CONFIG', `server.limits.tenants.${slug}: no plan "${plan}" in server.limits.plans`)
  }
  return { ...result.data, collections, limits: { ...limits, plans } }
}
