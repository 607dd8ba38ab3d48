// `npm run bench -- --only backup`: per-tenant backup and restore (issue 13) of a large tenant on
// each placement, in MB/s of the tenant's data (as its engine measures it), against a plain
// `copyFile` of the backup file (the floor: what the disk does with no database work at all; for
// SQLite the backup file is the tenant's database, page for page).
import { copyFile, rm } from 'node:fs/promises'
import { createTenantry, type Isolation, type Tenantry } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres } from 'tenantry/testing'
import { fmt, type BenchContext } from '../harness.js'

const migrations = {
  '0001_items': {
    up: async (db: any, { engine }: { engine: string }) => {
      await db.schema
        .createTable('items')
        .addColumn('id', 'integer', (c: any) => (engine === 'postgres' ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
        .addColumn('n', 'integer', (c: any) => c.notNull())
        .addColumn('label', 'text')
        .execute()
    },
  },
}

const mbps = (bytes: number, ms: number) => bytes / 1024 / 1024 / (ms / 1000)

export async function backupGroup(ctx: BenchContext): Promise<void> {
  const found = await findPostgres()
  if ('skip' in found) throw new Error(`the backup group needs Postgres: ${found.skip}`)
  const rows = ctx.size(200_000, 20_000)
  const pg = `bench_backup_${process.pid}`
  const data = await createTestDatabase(found.url, 'tenantry_bench_backup')
  const tenantry: Tenantry = await createTenantry({
    home: await ctx.workDir('backup'),
    migrations: { tenant: migrations },
    dataSources: [{ id: 'local', engine: 'sqlite' }, { id: pg, engine: 'postgres', url: data.url, isolations: ['schema', 'database', 'row'] }],
  })
  const placements: Array<{ name: string; dataSource: string; isolation: Isolation }> = [
    { name: 'sqlite', dataSource: 'local', isolation: 'database' },
    { name: 'pg schema', dataSource: pg, isolation: 'schema' },
    { name: 'pg database', dataSource: pg, isolation: 'database' },
    { name: 'pg row', dataSource: pg, isolation: 'row' },
  ]
  const table: Array<Array<string | number>> = []
  let sqliteRatio = 0
  try {
    for (const [i, placement] of placements.entries()) {
      const slug = `big_${i}`
      await tenantry.createTenant({ slug, dataSource: placement.dataSource, isolation: placement.isolation })
      await tenantry.withTenant(slug, async () => {
        for (let at = 0; at < rows; at += 1000) {
          await tenantry.db().insertInto('items').values(Array.from({ length: 1000 }, (_, j) => ({ id: at + j + 1, n: j, label: `item ${at + j} ${'x'.repeat(40)}` }))).execute()
        }
      })
      // The tenant's data as its engine measures it (Postgres: its tables' and indexes' size), which the MB/s are of.
      const dataBytes = (await tenantry.storageBytes((await tenantry.catalog.findTenantBySlug(slug))!)) ?? 0
      let started = performance.now()
      const backup = await tenantry.tenants.backup(slug)
      const backupMs = performance.now() - started
      const copy = `${backup.location}.plain-copy`
      started = performance.now()
      await copyFile(backup.location, copy)
      const copyMs = performance.now() - started
      await rm(copy, { force: true })
      started = performance.now()
      await tenantry.tenants.restore(slug, { backup: backup.id })
      const restoreMs = performance.now() - started
      const count = await tenantry.withTenant(slug, () => tenantry.db().selectFrom('items').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow())
      if (Number(count.n) !== rows) throw new Error(`${placement.name}: ${String(count.n)} rows after the restore, not ${rows}`)
      if (placement.name === 'sqlite') sqliteRatio = backupMs / copyMs
      table.push([placement.name, rows, backup.method, fmt(dataBytes / 1024 / 1024), fmt(backup.bytes / 1024 / 1024), fmt(backupMs), fmt(mbps(dataBytes, backupMs)), fmt(restoreMs), fmt(mbps(dataBytes, restoreMs)), fmt(mbps(backup.bytes, copyMs))])
      ctx.log(`${placement.name}: backup ${fmt(backupMs)} ms, restore ${fmt(restoreMs)} ms, plain copy ${fmt(copyMs)} ms (${fmt(backup.bytes / 1024 / 1024)} MB)`)
      await tenantry.deleteTenant(slug, { purge: true })
    }
    ctx.table({
      kind: 'table',
      title: `Backup and restore of a ${rows}-row tenant, against a plain copyFile of the backup file`,
      headers: ['placement', 'rows', 'method', 'data MB', 'backup file MB', 'backup ms', 'backup MB/s of data', 'restore ms', 'restore MB/s of data', 'copyFile of the backup file MB/s'],
      rows: table,
    })
    ctx.goal({ name: 'SQLite backup against a plain file copy', target: 'recorded (no target)', measured: `${fmt(sqliteRatio)}× the copy's time`, met: true })
  } finally {
    await tenantry.close()
    await data.drop()
    await dropAppRoles(found.url, [pg])
  }
}
