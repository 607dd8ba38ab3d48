import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, it } from 'vitest'
import { createCliProject } from '@tenantry/cli/testing'

// Issue 13: `tenantry tenant move` and `tenantry tenant maintenance`, and what they answer to bad input.

const project = createCliProject(
  `export default {
  dataSources: [{ id: 'local', engine: 'sqlite' }, { id: 'second', engine: 'sqlite', directory: './second' }],
  router: { placementTtlMs: 100 },
  migrations: { tenant: { '0001_notes': { up: async (db) => { await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text').execute() } } } },
}\n`,
  'tenantry-cli-move-',
)
afterAll(() => project.cleanup())

const cli = (...args: string[]) => project.cli(args)

describe('tenantry tenant move and maintenance', () => {
  it('move carries the tenant to another data source; refuses bad input', { timeout: 180_000 }, async ({ expect }) => {
    expect((await cli('tenant', 'create', 'acme')).code).toBe(0)
    const moved = await cli('tenant', 'move', 'acme', '--data-source', 'second', '--json')
    expect(moved.code, moved.stderr).toBe(0)
    expect(JSON.parse(moved.stdout)).toMatchObject({ slug: 'acme', from: { dataSourceId: 'local' }, to: { dataSourceId: 'second', isolation: 'database' }, verified: true, oldCopyRemoved: true })
    expect(existsSync(join(project.path, 'second'))).toBe(true)
    const shown = JSON.parse((await cli('tenant', 'show', 'acme', '--json')).stdout)
    expect(shown.tenant).toMatchObject({ status: 'ready', placement: { dataSourceId: 'second' } })
    expect(shown.auditLog.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['tenant.move.started', 'tenant.move.flipped', 'tenant.move.succeeded']))

    const again = await cli('tenant', 'move', 'acme', '--data-source', 'second')
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/already on data source "second"/)
    expect((await cli('tenant', 'move', 'acme')).code).toBe(2) // --data-source is required
    expect((await cli('tenant', 'move', 'acme', '--data-source', 'second', '--isolation', 'sideways')).code).toBe(2)
    expect((await cli('tenant', 'move', 'acme', '--data-source', 'Bad Id')).code).toBe(2)
    expect((await cli('tenant', 'move', 'nobody', '--data-source', 'local')).stderr).toMatch(/Tenant "nobody" not found/)
    const row = await cli('tenant', 'move', 'acme', '--data-source', 'local', '--isolation', 'row')
    expect(row.code).toBe(1)
    expect(row.stderr).toMatch(/offers database isolation, not row/)
  })

  it('maintenance --read-only, then --off; refuses --read-only with --off, an empty message', { timeout: 120_000 }, async ({ expect }) => {
    const on = await cli('tenant', 'maintenance', 'acme', '--read-only', '--message', 'Back at noon', '--json')
    expect(on.code, on.stderr).toBe(0)
    expect(JSON.parse(on.stdout)).toMatchObject({ slug: 'acme', maintenance: 'Back at noon' })
    const off = await cli('tenant', 'maintenance', 'acme', '--off')
    expect(off.code, off.stderr).toBe(0)
    expect(off.stdout).toMatch(/out of maintenance/)
    expect((await cli('tenant', 'maintenance', 'acme')).code).toBe(2)
    expect((await cli('tenant', 'maintenance', 'acme', '--read-only', '--off')).code).toBe(2)
    expect((await cli('tenant', 'maintenance', 'acme', '--read-only', '--message', ' ')).code).toBe(2)
    expect((await cli('tenant', 'maintenance', 'acme', '--off', '--message', 'x')).code).toBe(2)
  })
})
