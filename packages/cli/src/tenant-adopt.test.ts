import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { createCliProject } from '@tenantry/cli/testing'

// Issue 13: `tenantry tenant adopt|split`, external ids on the command line, and bad input.

const project = createCliProject(
  `export default {
  migrations: { tenant: {
    '0001_prospects': { up: async (db) => { await db.schema.createTable('prospects').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('user_id', 'text', (c) => c.notNull()).addColumn('website', 'text').execute() } },
  } },
}\n`,
  'tenantry-cli-adopt-',
)
afterAll(() => project.cleanup())

beforeAll(() => {
  const db = new Database(join(project.path, 'shared.db'))
  db.exec(`create table prospects (id integer primary key, user_id text not null, website text);
    insert into prospects values (1, 'user_a', 'a1'), (2, 'user_b', 'b1'), (3, 'user_a', 'a2'), (4, 'user_c', 'c1');`)
  db.close()
})

const cli = (args: string[], env: Record<string, string | undefined> = {}) => project.cli(args, env)

describe('tenantry tenant adopt and split', () => {
  it('adopt --sqlite copies a matching file in (the file untouched); refuses bad input with exit 2 and changes nothing', { timeout: 180_000 }, async ({ expect }) => {
    const file = join(project.path, 'shared.db')
    const before = readFileSync(file)
    const adopted = await cli(['tenant', 'adopt', 'whole', '--sqlite', file, '--external-id', 'crm_1', '--json'])
    expect(adopted.code, adopted.stderr).toBe(0)
    expect(JSON.parse(adopted.stdout)).toMatchObject({ applied: ['0001_prospects'], recorded: false, tenant: { slug: 'whole', status: 'ready', externalId: 'crm_1' } })
    expect(readFileSync(file).equals(before)).toBe(true)
    const shown = await cli(['tenant', 'show', 'whole'])
    expect(shown.stdout).toMatch(/external id\s+crm_1/)
    expect(shown.stdout).toMatch(/tenant\.adopt\.succeeded/)
    const rows = await cli(['sql', 'whole', 'select count(*) as n from prospects', '--json'])
    expect(rows.stdout).toMatch(/4/)

    const missing = await cli(['tenant', 'adopt', 'other', '--sqlite', join(project.path, 'missing.db')])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/does not exist/)
    const unset = await cli(['tenant', 'adopt', 'other', '--postgres-url-env', 'TENANTRY_ADOPT_TEST_UNSET', '--schema', 'tenant_x'], { TENANTRY_ADOPT_TEST_UNSET: undefined })
    expect(unset.code).toBe(2)
    expect(unset.stderr).toMatch(/TENANTRY_ADOPT_TEST_UNSET is not set/)
    expect((await cli(['tenant', 'adopt', 'other'])).stderr).toMatch(/Name one database to adopt/)
    expect((await cli(['tenant', 'adopt', 'other', '--sqlite', file, '--schema', 'x'])).code).toBe(2)
    const badId = await cli(['tenant', 'create', 'other', '--external-id', ''])
    expect(badId.code).toBe(2)
    const taken = await cli(['tenant', 'adopt', 'whole', '--sqlite', file])
    expect(taken.code).toBe(1)
    expect(taken.stderr).toMatch(/already taken/)
    const list = JSON.parse((await cli(['tenant', 'list', '--json'])).stdout) as Array<{ slug: string }>
    expect(list.map((t) => t.slug)).toEqual(['whole'])
  })

  it('split --by user_id makes a tenant per user with its rows; a rerun skips them all', { timeout: 180_000 }, async ({ expect }) => {
    const file = join(project.path, 'shared.db')
    const split = await cli(['tenant', 'split', '--sqlite', file, '--by', 'user_id', '--json'])
    expect(split.code, split.stderr).toBe(0)
    const result = JSON.parse(split.stdout)
    expect(result).toMatchObject({ succeeded: 3, skipped: 0, failed: 0 })
    expect(result.results.map((r: { slug: string; rows: unknown }) => [r.slug, r.rows])).toEqual([
      ['user_a', { prospects: 2 }],
      ['user_b', { prospects: 1 }],
      ['user_c', { prospects: 1 }],
    ])
    const shown = JSON.parse((await cli(['tenant', 'show', 'user_a', '--json'])).stdout)
    expect(shown.tenant.externalId).toBe('user_a')
    const again = await cli(['tenant', 'split', '--sqlite', file, '--by', 'user_id'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/Split into 0 new tenants; 3 were split already; 0 failed/)
    const bad = await cli(['tenant', 'split', '--sqlite', file, '--by', 'user_id', '--slug-prefix', 'Bad-'])
    expect(bad.code).toBe(2)
    expect((await cli(['tenant', 'split', '--sqlite', file])).code).toBe(2) // --by is required
  })
})
