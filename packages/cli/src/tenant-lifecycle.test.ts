import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterAll, describe, it } from 'vitest'
import { createCliProject } from '@tenantry/cli/testing'

// Issue 13: `tenantry tenant export|import|erase`, and what they answer to bad input.

const project = createCliProject(
  `export default {
  services: { state: true },
  migrations: { tenant: { '0001_notes': { up: async (db) => { await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text').execute() } } } },
}\n`,
  'tenantry-cli-lifecycle-',
)
afterAll(() => project.cleanup())

const cli = (...args: string[]) => project.cli(args)

describe('tenantry tenant export, import and erase', () => {
  // Each command is a process of its own, seconds apiece on a busy machine.
  const file = join(project.path, 'acme.ndjson.gz')

  it('export writes a versioned file; refuses a file that exists, an unknown tenant, a missing --out', { timeout: 120_000 }, async ({ expect }) => {
    expect((await cli('tenant', 'create', 'acme')).code).toBe(0)
    const exported = await cli('tenant', 'export', 'acme', '--out', file, '--json')
    expect(exported.code, exported.stderr).toBe(0)
    expect(JSON.parse(exported.stdout)).toMatchObject({ slug: 'acme', rows: { notes: 0, tenantry_state: 0 }, files: 0 })
    const header = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8').split('\n')[0]!)
    expect(header).toMatchObject({ format: 'tenantry-export', version: 1, migrations: ['0001_notes', 'tenantry_state.v1'] })

    // --out that exists: refused before anything is opened, the file untouched.
    const again = await cli('tenant', 'export', 'acme', '--out', file)
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/exists: an export never replaces a file/)
    expect((await cli('tenant', 'export', 'nobody', '--out', join(project.path, 'nobody.gz'))).stderr).toMatch(/Tenant "nobody" not found/)
    expect((await cli('tenant', 'export', 'acme')).code).toBe(2) // the required --out is missing
  })

  it('import makes a new tenant from it; refuses a taken slug, a missing file, a wrong version, a bad isolation', { timeout: 120_000 }, async ({ expect }) => {
    const header = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8').split('\n')[0]!)
    const imported = await cli('tenant', 'import', 'copy', '--from', file)
    expect(imported.code, imported.stderr).toBe(0)
    expect(imported.stdout).toMatch(/Tenant copy imported \(database isolation on local\)/)
    const shown = JSON.parse((await cli('tenant', 'show', 'copy', '--json')).stdout)
    expect(shown.tenant).toMatchObject({ slug: 'copy', status: 'ready' })
    expect(shown.auditLog.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['tenant.import.started', 'tenant.import.succeeded']))

    const taken = await cli('tenant', 'import', 'copy', '--from', file)
    expect(taken.code).toBe(1)
    expect(taken.stderr).toMatch(/slug "copy" is already taken/)
    const missing = await cli('tenant', 'import', 'other', '--from', join(project.path, 'missing.gz'))
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/--from ".*missing\.gz" does not exist/)
    const v2 = join(project.path, 'v2.gz')
    const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n')
    writeFileSync(v2, gzipSync([JSON.stringify({ ...header, version: 2 }), ...lines.slice(1)].join('\n')))
    const wrong = await cli('tenant', 'import', 'other', '--from', v2)
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/version 2 export; this Tenantry reads version 1 only/)
    const bad = await cli('tenant', 'import', 'other', '--from', file, '--isolation', 'galaxy')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--isolation.*galaxy/)
    expect((await cli('tenant', 'show', 'other')).code).toBe(1) // nothing was made
  })

  it('erase asks for --yes, erases, and says so when there is nothing left to erase', { timeout: 120_000 }, async ({ expect }) => {
    const unconfirmed = await cli('tenant', 'erase', 'copy')
    expect(unconfirmed.code).toBe(2)
    expect(unconfirmed.stderr).toMatch(/cannot be undone: pass --yes/)
    const erased = await cli('tenant', 'erase', 'copy', '--yes', '--json')
    expect(erased.code, erased.stderr).toBe(0)
    expect(JSON.parse(erased.stdout)).toMatchObject({ tenantId: expect.stringMatching(/^t/), removed: { tokens: 0 } })
    const twice = await cli('tenant', 'erase', 'copy', '--yes')
    expect(twice.code).toBe(1)
    expect(twice.stderr).toMatch(/Tenant "copy" not found/)
  })
})
