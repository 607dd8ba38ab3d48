import { z } from 'zod'
import { BOUNDED_CONFIG_SCHEMA, parseBoundedConfig, type BoundedConfig } from '../../bounded.js'
import { TenantryError } from '../../errors.js'
import type { Isolation } from '../engine.js'
import type { DataSourceBase, EngineDefinition } from '../engine-definition.js'
import { PostgresEngine } from './postgres-engine.js'
import { appRoleName, assertPostgresDataSourceId } from './postgres-names.js'
import { APP_PRIVILEGES, type AppPrivilege } from './postgres-privileges.js'

/** A Postgres server (or a customer's own, `mode: 'byod'`). */
export interface PostgresDataSourceConfig extends DataSourceBase {
  engine: 'postgres'
  /**
   * The admin connection URL (DDL and migrations). Sealed into the catalog with the secret
   * key and never shown again: listings show host, port, database and user only.
   */
  url: string
  /** @default ['schema', 'database', 'row'] */
  isolations?: Isolation[]
  /** Connections in each shared pool (admin and app). @default 10 */
  poolSize?: number
  /** Connections in each tenant's own pool (each tenant logs in as its own role). @default 2 */
  tenantPoolSize?: number
  /**
   * The DML privileges each tenant's role gets on its tables, under every isolation: leave
   * `'DELETE'` out and `delete from …` is refused by Postgres (42501). Applied when a tenant is
   * created and after each migration (a privilege left out later is taken back then).
   * @default ['SELECT', 'INSERT', 'UPDATE', 'DELETE']
   */
  appPrivileges?: AppPrivilege[]
  /**
   * Deadlines of `tenantry.bounded` (the server's data API), e.g. `{ statementTimeoutMs: 1000 }`.
   * A tenant's own can be set over it by the server (`server.dataApi.tenants`).
   * @default { statementTimeoutMs: 2000 }
   */
  bounded?: BoundedConfig
  /**
   * Tenants' `tenantry.prepare` reads run as named prepared statements, which Postgres parses
   * and plans once per connection. Set `false` behind a pooler that cannot keep them between
   * transactions (PgBouncer in transaction mode before 1.21).
   * @default true
   */
  preparedStatements?: boolean
}

/** `appPrivileges`: SELECT is needed by every read and by any write with a WHERE or RETURNING. */
const APP_PRIVILEGES_SCHEMA = z
  .array(z.enum(APP_PRIVILEGES))
  .min(1)
  .refine((p) => p.includes('SELECT'), { message: "must include 'SELECT'" })
  .refine((p) => new Set(p).size === p.length, { message: 'must not repeat a privilege' })

const POSTGRES_CONFIG_SCHEMA = z.object({
  url: z.string(),
  isolations: z.array(z.enum(['schema', 'database', 'row'])).min(1).optional(),
  poolSize: z.number().int().positive().optional(),
  tenantPoolSize: z.number().int().positive().optional(),
  appPrivileges: APP_PRIVILEGES_SCHEMA.optional(),
  bounded: BOUNDED_CONFIG_SCHEMA.optional(),
  preparedStatements: z.boolean().optional(),
})

/** The catalog's non-secret record of a Postgres data source. */
interface PostgresRecordConfig {
  host: string
  port: number
  database: string
  user: string
  isolations?: Isolation[]
  poolSize?: number
  tenantPoolSize?: number
  bounded?: BoundedConfig
  appPrivileges?: AppPrivilege[]
  preparedStatements?: boolean
}

/** The associated data the URL is sealed with: a sealed URL copied onto another data source does not open. */
const secretPurpose = (id: string) => `data-source:${id}`

/** Postgres in the engine registry. */
export const POSTGRES_ENGINE: EngineDefinition<PostgresDataSourceConfig> = {
  name: 'postgres',
  label: 'PostgreSQL',
  configSchema: POSTGRES_CONFIG_SCHEMA,

  toRecord(source, { box }) {
    assertPostgresDataSourceId(source.id)
    const url = parsePostgresUrl(source.url, source.id)
    const config: PostgresRecordConfig = {
      host: url.hostname,
      port: Number(url.port || 5432),
      database: url.pathname.slice(1),
      user: decodeURIComponent(url.username),
      ...(source.isolations ? { isolations: source.isolations } : {}),
      ...(source.poolSize ? { poolSize: source.poolSize } : {}),
      ...(source.tenantPoolSize ? { tenantPoolSize: source.tenantPoolSize } : {}),
      ...(source.appPrivileges ? { appPrivileges: source.appPrivileges } : {}),
      ...(source.bounded ? { bounded: source.bounded } : {}),
      ...(source.preparedStatements === false ? { preparedStatements: false } : {}),
    }
    return { config: { ...config }, secret: box.seal(source.url, secretPurpose(source.id)) }
  },

  createEngine(record, { box, logger }) {
    if (!record.secret) throw new TenantryError('INVALID_CONFIG', `Data source ${record.id} has no credentials`)
    const { isolations, poolSize, tenantPoolSize, preparedStatements } = record.config as Partial<PostgresRecordConfig>
    // Checked again: a record may come from an older version or another process's config.
    const bounded = parseBoundedConfig((record.config as { bounded?: unknown }).bounded, record.id)
    const privileges = APP_PRIVILEGES_SCHEMA.optional().safeParse((record.config as { appPrivileges?: unknown }).appPrivileges)
    if (!privileges.success) throw new TenantryError('INVALID_CONFIG', `Data source ${record.id}: appPrivileges ${privileges.error.issues[0]?.message ?? 'is invalid'}`)
    return new PostgresEngine({
      id: record.id,
      url: box.open(record.secret, secretPurpose(record.id)),
      appRole: { name: appRoleName(record.id), password: box.derive(`postgres-app-role:${record.id}`) },
      deriveSecret: (purpose) => box.derive(`data-source:${record.id}:${purpose}`),
      logger,
      ...(isolations ? { isolations } : {}),
      ...(poolSize ? { poolSize } : {}),
      ...(tenantPoolSize ? { tenantPoolSize } : {}),
      ...(bounded ? { bounded } : {}),
      ...(privileges.data ? { appPrivileges: privileges.data } : {}),
      ...(preparedStatements === false ? { preparedStatements: false } : {}),
    })
  },

  describe(config) {
    const { user, host, port, database } = config as Partial<PostgresRecordConfig>
    return `${user}@${host}:${port}/${database}`
  },
}

function parsePostgresUrl(text: string, id: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new TenantryError('INVALID_CONFIG', `Data source ${id}: url is not a URL`)
  }
  if (!/^postgres(ql)?:$/.test(url.protocol) || !url.hostname || url.pathname.length < 2) {
    throw new TenantryError('INVALID_CONFIG', `Data source ${id}: url must look like postgres://user:password@host:5432/database`)
  }
  return url
}
