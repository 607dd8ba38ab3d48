import { afterAll, describe, it } from 'vitest'
import { createCliProject } from '@tenantry/cli/testing'

// Issue 13: `tenantry tenant backup|backups|restore`, and what they answer to bad input.

const project = createCliProject(
  `export default {
  migrations: { tenant: { '0001_notes': { up: async (db) => { await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text').execute() } } } },
}\n`,
  'tenantry-cli-backup-',
)
afterAll(() => project.cleanup())

const cli = (...args: string[]) => project.cli(args)

const notes = async (slug: string) => JSON.parse((await cli('sql', slug, 'select id, body from notes order by id', '--json')).stdout)

describe('tenantry tenant backup, backups and restore', () => {
  it('backup → write more → restore in place and --as; bad inputs are refused with clear errors', { timeout: 180_000 }, async ({ expect }) => {
    expect((await cli('tenant', 'create', 'acme')).code).toBe(0)
    expect((await cli('sql', 'acme', "insert into notes (id, body) values (1, 'kept'), (2, 'also kept')")).code).toBe(0)
    const before = await notes('acme')

    const taken = await cli('tenant', 'backup', 'acme', '--json')
    expect(taken.code, taken.stderr).toBe(0)
    const backup = JSON.parse(taken.stdout)
    expect(backup).toMatchObject({ id: expect.stringMatching(/^b/), method: 'sqlite-backup-api', migrations: ['0001_notes'] })
    const listed = await cli('tenant', 'backups', 'acme')
    expect(listed.stdout).toContain(backup.id)

    expect((await cli('sql', 'acme', "insert into notes (id, body) values (3, 'after')")).code).toBe(0)
    expect((await cli('sql', 'acme', "update notes set body = 'changed' where id = 1")).code).toBe(0)
    const restored = await cli('tenant', 'restore', 'acme', '--backup', backup.id)
    expect(restored.code, restored.stderr).toBe(0)
    expect(restored.stdout).toMatch(/Tenant acme restored from backup/)
    expect(await notes('acme')).toEqual(before)

    const copy = await cli('tenant', 'restore', 'acme', '--backup', backup.id, '--as', 'acme_copy', '--json')
    expect(copy.code, copy.stderr).toBe(0)
    expect(JSON.parse(copy.stdout).tenant).toMatchObject({ slug: 'acme_copy', status: 'ready' })
    expect(await notes('acme_copy')).toEqual(before)

    const unknown = await cli('tenant', 'restore', 'acme', '--backup', 'b000000000aaaaaaaaaaaaaaaa')
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/has no backup b000000000aaaaaaaaaaaaaaaa/)
    const malformed = await cli('tenant', 'restore', 'acme', '--backup', 'nope')
    expect(malformed.code).toBe(2)
    expect(malformed.stderr).toMatch(/is not a backup id/)
    const slugTaken = await cli('tenant', 'restore', 'acme', '--backup', backup.id, '--as', 'acme_copy')
    expect(slugTaken.code).toBe(1)
    expect(slugTaken.stderr).toMatch(/slug "acme_copy" is already taken/)
    expect((await cli('tenant', 'restore', 'acme', '--backup', backup.id, '--as', 'Bad Slug!')).code).toBe(2)
    expect((await cli('tenant', 'restore', 'acme')).code).toBe(2) // --backup is required
    expect((await cli('tenant', 'backup', 'nobody')).stderr).toMatch(/Tenant "nobody" not found/)
    expect(await notes('acme')).toEqual(before)

    const shown = JSON.parse((await cli('tenant', 'show', 'acme', '--json')).stdout)
    expect(shown.auditLog.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['tenant.backup.succeeded', 'tenant.restore.succeeded']))
  })
})
