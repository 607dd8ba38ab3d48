import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, describe, it } from 'vitest'
import { CLI_BIN, createCliProject } from '@tenantry/cli/testing'

// Issue 16: `tenantry tenant backup` and `restore` show where they are on a terminal (a real
// pseudo-terminal: util-linux's `script` runs the built CLI on one), and print no control
// characters when piped or with --json.

const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/
const project = createCliProject(
  `export default {
  migrations: { tenant: { '0001_notes': { up: async (db) => { await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text').execute() } } } },
}\n`,
  'tenantry-cli-backup-progress-',
)
afterAll(() => project.cleanup())

const { home, config } = project
const cli = (...args: string[]) => project.cli([...args, '--config', config])

/** Runs the built `tenantry` on a pseudo-terminal 120 columns wide; answers everything the terminal showed. */
function onTerminal(...args: string[]): Promise<{ code: number; screen: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  const command = `stty cols 120 rows 40; ${[process.execPath, CLI_BIN, ...args, '--config', config].map(quote).join(' ')}`
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color', TENANTRY_HOME: home }
  delete env.TENANTRY_CATALOG_URL
  delete env.TENANTRY_SECRET_KEY
  return new Promise((resolve) => {
    execFile('script', ['-qfec', command, '/dev/null'], { cwd: project.path, env, encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, screen: stdout })
    })
  })
}

describe('progress of tenant backup and restore', () => {
  it('a bar of the pages copied and the bytes checked on a terminal, then the summary; piped, plain step lines; --json, nothing on stderr', { timeout: 180_000 }, async ({ expect }) => {
    expect((await cli('tenant', 'create', 'acme')).code).toBe(0)
    const filled = await cli('sql', 'acme', "with recursive n(i) as (select 1 union all select i + 1 from n where i < 3000) insert into notes (body) select 'note ' || i from n")
    expect(filled.code, filled.stderr).toBe(0)

    const backup = await onTerminal('tenant', 'backup', 'acme')
    expect(backup.code, backup.screen).toBe(0)
    expect(backup.screen).toMatch(/copy [\u2588\u2591]{30} \d+\/\d+ pages \| ([\d.]+|-)\/s \| (\d+s|--) left/)
    expect(backup.screen).toContain('\u001b[') // drawn live, with the terminal's control sequences
    const id = /Tenant acme backed up: (b[0-9a-z]{25}) \(sqlite-backup-api, [\d.]+ KiB\)/.exec(backup.screen)?.[1]
    expect(id, backup.screen).toBeDefined()

    const restore = await onTerminal('tenant', 'restore', 'acme', '--backup', id!)
    expect(restore.code, restore.screen).toBe(0)
    expect(restore.screen).toMatch(/checksum [\u2588\u2591]{30} \d+\/\d+ bytes/)
    expect(restore.screen).toContain(`Tenant acme restored from backup ${id}.`)

    // Piped: one plain line per step on stderr, the summary on stdout, no control characters.
    const piped = await cli('tenant', 'backup', 'acme')
    expect(piped.code, piped.stderr).toBe(0)
    expect(piped.stderr).toBe('  copy\n  checksum\n')
    expect(piped.stdout).toMatch(/^Tenant acme backed up: /)
    const restored = await cli('tenant', 'restore', 'acme', '--backup', id!)
    expect(restored.code, restored.stderr).toBe(0)
    expect(restored.stderr).toBe('  checksum\n  copy\n  migrate\n')
    for (const run of [piped, restored]) expect(run.stdout + run.stderr).not.toMatch(CONTROL)

    const json = await cli('tenant', 'backup', 'acme', '--json')
    expect(json.stderr).toBe('')
    expect(JSON.parse(json.stdout)).toMatchObject({ method: 'sqlite-backup-api' })
  })
})
