import { sql, type Kysely, type Migration } from 'kysely'
import type { EngineName } from '../engines/engine.js'

/**
 * The catalog's own migrations. Portable across SQLite and Postgres: text ids, ISO-8601
 * text timestamps (which sort correctly as text), JSON as text.
 * Never edit a shipped migration; add the next one.
 */
export function catalogMigrations(engine: EngineName): Record<string, Migration> {
  return {
  '0001_catalog': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('data_sources')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('engine', 'text', (c) => c.notNull())
        .addColumn('mode', 'text', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('capacity', 'integer')
        .addColumn('region', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()

      await db.schema
        .createTable('tenants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('slug', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('operation', 'text', (c) => c.notNull())
        .addColumn('status_reason', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('purged_at', 'text')
        .execute()
      // A slug stays taken while any of its data exists: only purged tenants release it.
      await db.schema
        .createIndex('tenants_slug_live')
        .on('tenants')
        .column('slug')
        .unique()
        .where(sql.ref('purged_at'), 'is', null)
        .execute()
      await db.schema.createIndex('tenants_status').on('tenants').column('status').execute()

      await db.schema
        .createTable('placements')
        .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id'))
        .addColumn('isolation', 'text', (c) => c.notNull())
        .addColumn('data_source_id', 'text', (c) => c.notNull().references('data_sources.id'))
        .addColumn('locator', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('placements_data_source').on('placements').column('data_source_id').execute()

      await db.schema
        .createTable('tenant_migrations')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('migration', 'text', (c) => c.notNull())
        .addColumn('applied_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('tenant_migrations_pk', ['tenant_id', 'migration'])
        .execute()

      await db.schema
        .createTable('audit_log')
        .$call((t) =>
          engine === 'postgres'
            ? t.addColumn('id', 'bigserial', (c) => c.primaryKey())
            : t.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement()),
        )
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('tenant_id', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('details', 'text')
        .execute()
      await db.schema.createIndex('audit_log_tenant').on('audit_log').columns(['tenant_id', 'id']).execute()

      await db.schema
        .createTable('locks')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('pid', 'integer', (c) => c.notNull())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('acquired_at', 'text', (c) => c.notNull())
        .addColumn('heartbeat_at', 'text', (c) => c.notNull())
        .execute()
    },
  },
  '0002_data_source_secrets': {
    async up(db: Kysely<any>) {
      // Credentials (a BYOD connection URL) sealed with the SecretBox; never in `config`.
      await db.schema.alterTable('data_sources').addColumn('secret', 'text').execute()
    },
  },
  '0003_tokens': {
    async up(db: Kysely<any>) {
      // Integration tokens: only a hash of the secret is stored (see tokens/token-store.ts).
      await db.schema
        .createTable('tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('prefix', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('read_only', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .addColumn('revoked_at', 'text')
        .addColumn('last_used_at', 'text')
        .addColumn('created_by', 'text', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('tokens_tenant').on('tokens').columns(['tenant_id', 'created_at']).execute()
    },
  },
  '0004_tenant_settings_usage': {
    async up(db: Kysely<any>) {
      // Per-tenant settings as one JSON document (`{ quotas: {...} }`), so that later per-tenant
      // limits need no migration. No row: the config's defaults apply.
      await db.schema
        .createTable('tenant_settings')
        .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id'))
        .addColumn('settings', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .execute()
      // Usage per tenant per UTC day (YYYY-MM-DD), the shape billing reads. Counters are added to
      // by each process's periodic flush; storage_bytes is the last size measured that day.
      await db.schema
        .createTable('tenant_usage')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('day', 'text', (c) => c.notNull())
        .addColumn('requests', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('statements', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('rows_read', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('rows_written', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('exec_ms', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('storage_bytes', 'bigint')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('tenant_usage_pk', ['tenant_id', 'day'])
        .execute()
    },
  },
  '0005_sealed_values': {
    async up(db: Kysely<any>) {
      // Deployment secrets other than a data source's credentials, sealed with the SecretBox
      // (e.g. the root that role passwords are derived from, kept across key rotations).
      await db.schema
        .createTable('sealed_values')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('sealed', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
    },
  },
  '0006_claim_chunks': {
    async up(db: Kysely<any>) {
      // Chunks of a claim (a browser's local data moving into a tenant) staged until the claim
      // commits in the tenant's own database (see claims/claim-store.ts). Bound to the tenant and
      // to who stages them; deleted at commit, or when abandoned.
      await db.schema
        .createTable('claim_chunks')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('claim_id', 'text', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('rows', 'text', (c) => c.notNull())
        .addColumn('row_count', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('claim_chunks_pk', ['tenant_id', 'claim_id', 'seq'])
        .execute()
      await db.schema.createIndex('claim_chunks_created').on('claim_chunks').column('created_at').execute()
    },
  },
  '0007_tenant_secrets': {
    async up(db: Kysely<any>) {
      // Tenant-scoped secrets (services/secrets): each tenant's data key, sealed by the master key,
      // and its secrets, sealed by the data key. Purging a tenant deletes both (crypto-shredding).
      await db.schema
        .createTable('tenant_keys')
        .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id'))
        .addColumn('sealed', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('tenant_secrets')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('sealed', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('tenant_secrets_pk', ['tenant_id', 'name'])
        .execute()
    },
  },
  '0010_external_ids': {
    async up(db: Kysely<any>) {
      // A tenant's id in another system (an auth provider's user id, a CRM account id), to find
      // it by. Unique among tenants whose data exists, as slugs are: a purged tenant frees it.
      await db.schema.alterTable('tenants').addColumn('external_id', 'text').execute()
      await db.schema
        .createIndex('tenants_external_id_live')
        .on('tenants')
        .column('external_id')
        .unique()
        .where(sql.ref('purged_at'), 'is', null)
        .execute()
    },
  },
  '0008_tenant_backups': {
    async up(db: Kysely<any>) {
      // Per-tenant backups (lifecycle/tenant-backups.ts): where each one is, how it was taken,
      // its size and checksum, and the tenant's migration ledger when it was taken.
      await db.schema
        .createTable('tenant_backups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('engine', 'text', (c) => c.notNull())
        .addColumn('isolation', 'text', (c) => c.notNull())
        .addColumn('data_source_id', 'text', (c) => c.notNull())
        .addColumn('method', 'text', (c) => c.notNull())
        .addColumn('location', 'text', (c) => c.notNull())
        .addColumn('bytes', 'integer', (c) => c.notNull())
        .addColumn('checksum', 'text', (c) => c.notNull())
        .addColumn('migrations', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('tenant_backups_tenant').on('tenant_backups').columns(['tenant_id', 'created_at']).execute()
    },
  },
  '0009_tenant_moves': {
    async up(db: Kysely<any>) {
      // A live move's target and phase (lifecycle/tenant-move.ts), so that a move cut short
      // (kill -9) is finished or cleaned by running it again. One move per tenant at a time.
      await db.schema
        .createTable('tenant_moves')
        .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id'))
        .addColumn('from_data_source_id', 'text', (c) => c.notNull())
        .addColumn('from_isolation', 'text', (c) => c.notNull())
        .addColumn('from_locator', 'text', (c) => c.notNull())
        .addColumn('to_data_source_id', 'text', (c) => c.notNull())
        .addColumn('to_isolation', 'text', (c) => c.notNull())
        .addColumn('to_locator', 'text', (c) => c.notNull())
        .addColumn('phase', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('flipped_at', 'text')
        .execute()
      // Maintenance mode: reads served, writes refused with this message (null: not in maintenance).
      await db.schema.alterTable('tenants').addColumn('maintenance_message', 'text').execute()
    },
  },
  '0012_change_feed': {
    async up(db: Kysely<any>) {
      // Several server nodes (cluster/change-feed.ts): every write to what nodes cache announces
      // itself on NOTIFY, in the writing transaction, so it is heard only once committed, and no
      // writer can forget to. SQLite has no cross-process notification: its feed is in-process.
      if (engine !== 'postgres') return
      await sql`
        create or replace function tenantry_notify_change() returns trigger language plpgsql as $$
        declare
          r jsonb := to_jsonb(case when tg_op = 'DELETE' then old else new end);
        begin
          perform pg_notify('tenantry_changes', json_build_object(
            'kind', tg_argv[0],
            'tenantId', r ->> tg_argv[1],
            'tokenId', case when tg_argv[0] = 'token' then r ->> 'id' end
          )::text);
          return null;
        end
        $$`.execute(db)
      const triggers: Array<[table: string, events: string, kind: string, tenantColumn: string]> = [
        ['tenants', 'update or delete', 'tenant', 'id'],
        ['placements', 'update or delete', 'tenant', 'tenant_id'],
        // Not on last_used_at, which verifying writes once a minute.
        ['tokens', 'update of revoked_at, expires_at or delete', 'token', 'tenant_id'],
        ['tenant_settings', 'insert or update or delete', 'settings', 'tenant_id'],
      ]
      for (const [table, events, kind, column] of triggers) {
        await sql
          .raw(`create trigger tenantry_change_${table} after ${events} on ${table} for each row execute function tenantry_notify_change('${kind}', '${column}')`)
          .execute(db)
      }
    },
  },
}}
