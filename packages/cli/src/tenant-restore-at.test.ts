import type { Kysely } from 'kysely'
import { afterAll, describe, it } from 'vitest'
import { createTenantry } from 'tenantry'
import { createCliProject } from '@tenantry/cli/testing'

// Issue 13, point-in-time restore: `tenantry tenant restore <slug> --at <time> [--as <new>]`, and
// the window `tenantry tenant backups` shows. The WAL is shipped by this test process (as the
// server would), with stamps it chooses.

const project = createCliProject(
  `export default {
  backups: { pointInTime: { retention: '1h' } },
  migrations: { tenant: { '0001_notes': { up: async (db) => { await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text').execute() } } } },
}\n`,
  'tenantry-cli-restore-at-',
)
afterAll(() => project.cleanup())

const home = project.home
const cli = (...args: string[]) => project.cli(args)
const ids = async (slug: string): Promise<number[]> => (JSON.parse((await cli('sql', slug, 'select id from notes order by id', '--json')).stdout) as { rows: Array<{ id: number | string }> }).rows.map((r) => Number(r.id))

describe('tenantry tenant restore --at', () => {
  it('restores the state at a time, in place and --as; a time outside the window is refused and nothing changes', { timeout: 180_000 }, async ({ expect }) => {
    expect((await cli('tenant', 'create', 'acme')).code).toBe(0)
    expect((await cli('sql', 'acme', "insert into notes (id, body) values (1, 'first')")).code).toBe(0)
    const tenantry = await createTenantry({
      home,
      backups: { pointInTime: { retention: '1h' } },
      migrations: { tenant: { '0001_notes': { up: async (db: Kysely<any>) => db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text').execute() } } },
    })
    try {
      const t0 = Math.ceil(Date.now() / 1000) * 1000 + 1000
      const at = (ms: number) => new Date(t0 + ms).toISOString()
      await tenantry.pointInTime!.tick(t0)
      expect((await cli('sql', 'acme', "insert into notes (id, body) values (2, 'second')")).code).toBe(0)
      await tenantry.pointInTime!.tick(t0 + 1000)
      const before = await ids('acme')
      expect(before).toEqual([1, 2])

      const listed = await cli('tenant', 'backups', 'acme')
      expect(listed.code, listed.stderr).toBe(0)
      expect(listed.stdout).toContain(`Restorable to any time from ${at(0)} to ${at(1000)}`)

      const outside = await cli('tenant', 'restore', 'acme', '--at', at(-60_000))
      expect(outside.code).toBe(1)
      expect(outside.stderr).toMatch(/cannot be restored to .*: it can be restored to/)
      expect((await cli('tenant', 'restore', 'acme', '--at', 'last tuesday')).code).toBe(2)
      expect((await cli('tenant', 'restore', 'acme', '--at', at(0), '--backup', 'b000000000aaaaaaaaaaaaaaaa')).code).toBe(2)
      expect((await cli('tenant', 'restore', 'acme')).code).toBe(2)
      expect(await ids('acme')).toEqual(before)

      const copy = await cli('tenant', 'restore', 'acme', '--at', at(0), '--as', 'acme_then')
      expect(copy.code, copy.stderr).toBe(0)
      expect(copy.stdout).toMatch(/acme as it was at .* restored as new tenant acme_then/)
      expect(await ids('acme_then')).toEqual([1])

      const inPlace = await cli('tenant', 'restore', 'acme', '--at', at(0), '--json')
      expect(inPlace.code, inPlace.stderr).toBe(0)
      expect(JSON.parse(inPlace.stdout).backup).toMatchObject({ method: 'point-in-time' })
      expect(await ids('acme')).toEqual([1])
    } finally {
      await tenantry.close()
    }
  })
})
