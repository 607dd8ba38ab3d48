import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { SecretBox } from '../../secrets/secret-box.js'
import { runEngineConformance } from '../../testing/engine-conformance.js'
import { createTestDatabase, dropAppRoles, findPostgres, type TestDatabase } from '../../testing/services.js'
import type { Isolation } from '../engine.js'
import { createEngine, toDataSourceRecord } from '../registry.js'

const postgres = await findPostgres()

const ROW_SKIPS = [
  {
    reason: 'row tenants share one schema: a tenant has no storage of its own to create, find or miss',
    tests: ['create, exists and drop' as const, 'doctor passes, and fails a tenant whose storage is missing' as const],
  },
]

for (const isolation of ['schema', 'database', 'row'] as const satisfies readonly Isolation[]) {
  if ('skip' in postgres) {
    describe.skip(`engine conformance: postgres × ${isolation} (skipped: ${postgres.skip})`, () => it('needs Postgres', () => {}))
    continue
  }
  const id = `pg_engine_${isolation}_${process.pid}`
  let data: TestDatabase | undefined
  runEngineConformance({
    name: 'postgres',
    isolation,
    // Built as Tenantry builds it, through the registry. Row isolation is tested on a data source
    // offering all three, so that read-only access is there to refuse it.
    engine: async () => {
      data = await createTestDatabase(postgres.url, `tenantry_engine_${isolation}`)
      const box = new SecretBox(randomBytes(32))
      const config = { id, engine: 'postgres' as const, url: data.url, ...(isolation === 'row' ? {} : { isolations: [isolation] }) }
      return createEngine({ ...toDataSourceRecord(config, box), createdAt: '' }, { box, logger: console })
    },
    skip: isolation === 'row' ? ROW_SKIPS : [],
    additionalTests: ({ engine, createTenant }) => {
      if (isolation === 'row') return
      it('the read-only URL reads its tenant, writes nothing, and stops working when revoked', async () => {
        const placement = await createTenant()
        const access = engine().readOnlyAccess!
        const { url } = await access.grant(placement)
        const client = new pg.Client({ connectionString: url })
        await client.connect()
        try {
          expect((await client.query('select count(*)::int as n from notes')).rows).toEqual([{ n: 0 }])
          await expect(client.query("insert into notes (id, title) values (1, 'no')")).rejects.toThrow(/read-only|permission denied/)
        } finally {
          await client.end()
        }
        await access.revoke(placement)
        await expect(new pg.Client({ connectionString: url }).connect()).rejects.toThrow(/role .* does not exist|authentication/)
      })
    },
    teardown: async () => {
      await data?.drop()
      await dropAppRoles(postgres.url, [id])
    },
  })
}
