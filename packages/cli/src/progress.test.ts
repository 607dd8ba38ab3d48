import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from 'tenantry/testing'
import { CLI_BIN, runCliCaptured } from '@tenantry/cli/testing'
import { parseTenantList } from './commands/tenant-bulk.js'
import { UsageError } from './errors.js'
import { Output } from './output.js'
import { Progress, WorkProgress } from './progress.js'

/**
 * Long operations show a live bar on a terminal and plain lines elsewhere. The terminal is a
 * real pseudo-terminal: util-linux's `script` runs the built command on one, as a user's shell
 * would, and what it drew is read back.
 */
const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const ESC = '\u001b'
const dirs: Array<ReturnType<typeof tempDir>> = []
afterAll(() => dirs.forEach((dir) => dir.cleanup()))

function newHome(): string {
  const dir = tempDir('tenantry-progress-')
  dirs.push(dir)
  return dir.path
}

const ENV = (home: string) => ({ TENANTRY_HOME: home, TENANTRY_CATALOG_URL: undefined, TENANTRY_DEBUG: undefined })

/** Runs the built `tenantry` on a pseudo-terminal 120 columns wide; answers everything the terminal showed. */
function onTerminal(home: string, args: string[]): Promise<{ code: number; screen: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  const command = `stty cols 120 rows 40; ${[process.execPath, CLI_BIN, ...args].map(quote).join(' ')}`
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color', TENANTRY_HOME: home }
  delete env.TENANTRY_CATALOG_URL
  return new Promise((resolve) => {
    execFile('script', ['-qfec', command, '/dev/null'], { cwd: REPO, env, encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, screen: stdout })
    })
  })
}

/** A config beside the repo's: its two migrations (no-ops here) and `extra`. */
function writeConfig(home: string, extra: string): string {
  const path = join(home, 'extra.config.mjs')
  const done = '{ up: async () => {} }'
  writeFileSync(path, `export default { migrations: { tenant: { '0001_jobs_and_highlights': ${done}, '0002_highlight_indexes': ${done}, ${extra} } } }\n`)
  return path
}

describe('progress of long operations', { timeout: 240_000 }, () => {
  it('off a terminal: one plain line per item on stderr, then the summary with each failure on stdout', () => {
    const written = { stdout: '', stderr: '' }
    const out = new Output({ stdout: { write: (t: string) => (written.stdout += t) }, stderr: { write: (t: string) => (written.stderr += t) } })
    const progress = new Progress(out, { unit: 'tenants' })
    progress.start(3)
    progress.done('acme', 'succeeded', '  migrated acme')
    progress.done('beta', 'failed', '  FAILED beta', 'no such table:\nnotes')
    progress.done('gamma', 'skipped', '  skipped gamma')
    expect(progress.finish('Done.')).toEqual({ succeeded: 1, skipped: 1, failed: 1 })
    expect(written.stderr).toBe('  migrated acme\n  FAILED beta\n  skipped gamma\n')
    expect(written.stdout).toBe('Done.\nFailed (1):\n  beta: no such table: notes\n')

    const quiet = { stdout: '', stderr: '' }
    const json = new Progress(new Output({ stdout: { write: (t: string) => (quiet.stdout += t) }, stderr: { write: (t: string) => (quiet.stderr += t) } }), { unit: 'tenants', json: true })
    json.done('acme', 'failed', 'x', 'y')
    json.finish()
    expect(quiet).toEqual({ stdout: '', stderr: '' })
  })

  it('a tenant list is checked whole before anything is created', () => {
    expect(parseTenantList('# tenants\nacme\nbeta, Beta Inc\n\n')).toEqual([{ slug: 'acme' }, { slug: 'beta', name: 'Beta Inc' }])
    expect(() => parseTenantList('acme\nBad Slug\nacme')).toThrow(UsageError)
    expect(() => parseTenantList('acme\nBad Slug\nacme')).toThrow(/2 bad lines.*line 2: invalid slug "Bad Slug".*line 3: acme is already on line 1/)
    expect(() => parseTenantList('\n# none\n')).toThrow(/names no tenant/)
  })

  it('tenant create-many and migrate: a live bar and a summary on a terminal; piped, no control characters', async ({ expect }) => {
    const home = newHome()
    const list = join(home, 'tenants.txt')
    writeFileSync(list, Array.from({ length: 12 }, (_, i) => `t${String(i).padStart(2, '0')}`).join('\n'))

    const created = await onTerminal(home, ['tenant', 'create-many', list])
    expect(created.code, created.screen).toBe(0)
    // The bar: cli-progress's block characters, a count against the total, rate and time left.
    expect(created.screen).toMatch(/[\u2588\u2591]+ \d+\/12 tenants \| [\d.]+\/s \| .+ left \| 0 failed/)
    expect(created.screen).toContain(`${ESC}[`)
    expect(created.screen).toContain('Created 12 tenants; 0 already existed; 0 failed.')

    // Again, piped: the same command skips them all and prints plain text only.
    const piped = await runCliCaptured(['tenant', 'create-many', list], { cwd: REPO, env: ENV(home) })
    expect(piped.code).toBe(0)
    expect(piped.stdout).toBe('Created 0 tenants; 12 already existed; 0 failed.\n')
    expect(piped.stderr.split('\n').filter(Boolean)).toHaveLength(12)
    expect(piped.stdout + piped.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/)

    // A fan-out where one tenant fails: the bar counts the failure, the summary names it.
    await runCliCaptured(['sql', 't03', 'create table notes (id integer)'], { cwd: REPO, env: ENV(home) })
    const config = writeConfig(home, `'0003_notes': { up: (db) => db.schema.createTable('notes').addColumn('id', 'integer').execute() }`)
    const migrated = await onTerminal(home, ['migrate', '--config', config])
    expect(migrated.code).toBe(1)
    expect(migrated.screen).toMatch(/\d+\/12 tenants \| [\d.]+\/s \| .+ left \| 1 failed/)
    expect(migrated.screen).toMatch(/Tenants: 11 migrated, 1 failed, 0 skipped, 0 already up to date, of 12/)
    expect(migrated.screen).toMatch(/Failed \(1\):\r?\n {2}t03: .*notes.* already exists/)

    // sql --all, piped: every tenant's rows with their tenant, no bar.
    const all = await runCliCaptured(['sql', '--all', "select count(*) as n from sqlite_master where name = 'notes'"], { cwd: REPO, env: ENV(home) })
    expect(all.code).toBe(0)
    expect(all.stdout.split('\n')[0]).toMatch(/^tenant\s+n$/)
    expect(all.stdout).toMatch(/^t11\s+1$/m)
    expect(all.stdout).toContain('12 rows from 12 tenants; 0 failed.')
    expect(all.stdout + all.stderr).not.toContain(ESC)
    const allJson = JSON.parse((await runCliCaptured(['sql', '--all', 'select 1 as one', '--json'], { cwd: REPO, env: ENV(home) })).stdout)
    expect(allJson).toMatchObject({ succeeded: 12, failed: 0 })
    expect(allJson.results[0]).toEqual({ slug: 't00', rows: [{ one: 1 }] })
    // Failing in some tenants: the others still run, the summary names each failure, the exit code is 1.
    await runCliCaptured(['sql', 't03', 'create table marker (id integer)'], { cwd: REPO, env: ENV(home) })
    const partly = await onTerminal(home, ['sql', '--all', 'insert into notes (id) select 1 from marker'])
    expect(partly.code).toBe(1)
    expect(partly.screen).toMatch(/\d+\/12 tenants \| [\d.]+\/s \| .+ left \| \d+ failed/)
    expect(partly.screen).toContain('0 rows affected in 1 tenant; 11 failed.')
    expect(partly.screen).toMatch(/Failed \(11\):\r?\n {2}t00: no such table: marker/)
    expect(partly.screen).toContain('tenantry: The statement failed in 11 tenants of 12')
  })

  it('one long operation on one tenant: the step and its count, a bar where the total is known; plain step lines off a terminal', async ({ expect }) => {
    // In process, on a stream that says it is a terminal: the bar with done/total and time left.
    const drawn: string[] = []
    const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 120, rows: 40 })
    tty.on('data', (chunk: Buffer) => drawn.push(chunk.toString()))
    const work = new WorkProgress(new Output({ stdout: { write: () => true }, stderr: tty as unknown as NodeJS.WriteStream }), { unit: 'rows' })
    work.update({ step: 'copy jobs', done: 250, total: 1000 })
    work.update({ step: 'evil\u001b[2Jname', done: 1 })
    work.stop()
    const screen = drawn.join('')
    // (cli-progress draws at most 10 frames a second: the middle update is not drawn.)
    expect(screen).toMatch(/copy jobs [\u2588\u2591]{30} 250\/1000 rows \| ([\d.]+|-)\/s \| (\d+s|--) left/)
    expect(screen).toContain('evil\\u001b[2Jname | 1 rows | -/s')

    // The built CLI on a real pseudo-terminal: export and import show the table and the rows so far.
    const home = newHome()
    const config = writeConfig(home, `'0003_notes': { up: (db) => db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text').execute() }`)
    const setup = await runCliCaptured(['tenant', 'create', 'acme', '--config', config], { cwd: REPO, env: ENV(home) })
    expect(setup.code, setup.stderr).toBe(0)
    const filled = await runCliCaptured(
      ['sql', 'acme', "with recursive n(i) as (select 1 union all select i + 1 from n where i < 3000) insert into notes (body) select 'note ' || i from n", '--config', config],
      { cwd: REPO, env: ENV(home) },
    )
    expect(filled.code, filled.stderr).toBe(0)
    const file = join(home, 'acme.ndjson.gz')
    const exported = await onTerminal(home, ['tenant', 'export', 'acme', '--out', file, '--config', config])
    expect(exported.code, exported.screen).toBe(0)
    expect(exported.screen).toMatch(/export \w+ \| \d+ rows \| ([\d.]+|-)\/s/)
    expect(exported.screen).toMatch(/Tenant acme exported to .*: 3000 rows/)
    const imported = await onTerminal(home, ['tenant', 'import', 'copy', '--from', file, '--config', config])
    expect(imported.code, imported.screen).toBe(0)
    expect(imported.screen).toMatch(/import \w+ \| \d+ rows \| ([\d.]+|-)\/s/)
    expect(imported.screen).toContain('3000 rows')

    // Piped: a plain line per step on stderr, no control characters anywhere.
    const piped = await runCliCaptured(['tenant', 'export', 'copy', '--out', join(home, 'copy.ndjson.gz'), '--config', config], { cwd: REPO, env: ENV(home) })
    expect(piped.code, piped.stderr).toBe(0)
    expect(piped.stderr).toContain('  export notes\n')
    expect(piped.stdout + piped.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/)
    const json = await runCliCaptured(['tenant', 'export', 'copy', '--out', join(home, 'copy2.ndjson.gz'), '--json', '--config', config], { cwd: REPO, env: ENV(home) })
    expect(json.stderr).toBe('')
    expect(JSON.parse(json.stdout)).toMatchObject({ slug: 'copy', rows: { notes: 3000 } })
  })

  it('bad input to the new commands is a clear CLI error', async ({ expect }) => {
    const home = newHome()
    expect(await runCliCaptured(['tenant', 'create-many', join(home, 'missing.txt')], { cwd: REPO, env: ENV(home) })).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^tenantry: Cannot read the tenant list ".*missing\.txt": ENOENT\n$/),
    })
    expect(await runCliCaptured(['sql', '--all', 'acme', 'select 1'], { cwd: REPO, env: ENV(home) })).toMatchObject({ code: 2, stderr: expect.stringMatching(/With --all, give the statement only/) })
    expect(await runCliCaptured(['sql', 'acme'], { cwd: REPO, env: ENV(home) })).toMatchObject({ code: 2, stderr: expect.stringMatching(/Give a tenant slug and a statement/) })
    expect(await runCliCaptured(['sql', 'acme', 'select 1', '--concurrency', '2'], { cwd: REPO, env: ENV(home) })).toMatchObject({ code: 2, stderr: expect.stringMatching(/--concurrency goes with --all/) })
  })
})
