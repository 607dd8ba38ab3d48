import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import type { TokenRecord } from 'tenantry'
import { tempDir } from 'tenantry/testing'
import { runCliCaptured, type CliRun } from '@tenantry/cli/testing'

// The real built CLI, run from the repo root so that the repo's own tenantry.config.ts is used.
const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const dir = tempDir('tenantry-cli-token-')
const home = dir.path
afterAll(() => dir.cleanup())

function cli(...args: string[]): Promise<CliRun> {
  return runCliCaptured(args, {
    cwd: REPO,
    env: { TENANTRY_HOME: home, BETTER_AUTH_URL: 'https://tenantry.example', TENANTRY_CATALOG_URL: undefined, TENANTRY_DEBUG: undefined },
  })
}

describe('tenantry token', () => {
  it('creates (shown once), lists (never the secret), and revokes tokens', async () => {
    expect((await cli('tenant', 'create', 'acme')).code).toBe(0)

    const created = await cli('token', 'create', 'acme', '--read-only', '--expires-in', '30d', '--name', 'n8n', '--json')
    expect(created.code, created.stderr).toBe(0)
    const { token, record, url } = JSON.parse(created.stdout) as { token: string; record: TokenRecord; url: string }
    expect(token).toMatch(/^tnt_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/)
    expect(record).toMatchObject({ name: 'n8n', readOnly: true, revokedAt: null })
    expect(Date.parse(record.expiresAt!) - Date.parse(record.createdAt)).toBe(30 * 86_400_000)
    expect(url).toBe('https://tenantry.example')

    const text = await cli('token', 'create', 'acme', '--name', 'etl')
    expect(text.code, text.stderr).toBe(0)
    const plain = /^\s+(tnt_\S+)$/m.exec(text.stdout)?.[1]
    expect(plain).toMatch(/^tnt_/)
    expect(text.stdout).toContain('read-write')
    expect(text.stdout).toContain('not shown again')
    expect(text.stdout).toContain("url: 'https://tenantry.example'")

    const secret = token.slice('tnt_'.length + 16 + 1)
    const listed = await cli('token', 'list', 'acme')
    expect(listed.code).toBe(0)
    expect(listed.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+PREFIX\s+ACCESS\s+STATUS\s+EXPIRES\s+LAST USED$/)
    expect(listed.stdout).toMatch(new RegExp(`${record.id}\\s+n8n\\s+tnt_\\S+…\\s+read-only\\s+active`))
    const listedJson = await cli('token', 'list', 'acme', '--json')
    for (const output of [listed.stdout, listedJson.stdout]) {
      expect(output).not.toContain(token)
      expect(output).not.toContain(secret.slice(6))
      expect(output).not.toContain(plain!.slice(-30))
    }
    expect((JSON.parse(listedJson.stdout) as TokenRecord[]).map((t) => t.name)).toEqual(['n8n', 'etl'])
    // Not in the catalog either: only hashes are stored.
    const catalog = readdirSync(home).filter((f) => f.startsWith('catalog')).map((f) => readFileSync(join(home, f)).toString('latin1')).join('')
    expect(catalog).not.toContain(secret.slice(6))

    const revoked = await cli('token', 'revoke', record.id)
    expect(revoked.code, revoked.stderr).toBe(0)
    expect(revoked.stdout).toContain(`Token ${record.id} revoked.`)
    expect((await cli('token', 'list', 'acme')).stdout).toMatch(new RegExp(`${record.id}\\s+n8n.*revoked`))
  })

  it('fails with one line and exit 1 or 2 on bad input', async () => {
    const unknownTenant = await cli('token', 'create', 'nobody')
    expect(unknownTenant.code).toBe(1)
    expect(unknownTenant.stderr.trim().split('\n')).toEqual(['tenantry: Tenant "nobody" not found'])

    const badExpiry = await cli('token', 'create', 'acme', '--expires-in', '30 days')
    expect(badExpiry.code).toBe(2)
    expect(badExpiry.stderr).toMatch(/^tenantry: Invalid --expires-in "30 days"/)
    const both = await cli('token', 'create', 'acme', '--expires-in', '1d', '--expires', '2d')
    expect(both.code).toBe(2)
    expect(both.stderr).toMatch(/^tenantry: Give --expires-in only/)

    const badId = await cli('token', 'revoke', '../../x')
    expect(badId.code).toBe(2)
    const unknownId = await cli('token', 'revoke', 'aaaaaaaaaaaaaaaa')
    expect(unknownId.code).toBe(1)
    expect(unknownId.stderr).toMatch(/^tenantry: Token "aaaaaaaaaaaaaaaa" not found\n$/)
    expect((await cli('token', 'list', 'Bad-Slug')).code).toBe(2)
  })

  it('--expires-in is the option; --expires, its old spelling, still works and is not in the help', async () => {
    const lifetime = async (...args: string[]) => {
      const run = await cli('token', 'create', 'acme', ...args, '--json')
      expect(run.code, run.stderr).toBe(0)
      const { record } = JSON.parse(run.stdout) as { record: TokenRecord }
      return Date.parse(record.expiresAt!) - Date.parse(record.createdAt)
    }
    expect(await lifetime('--expires-in', '12h')).toBe(12 * 3_600_000)
    expect(await lifetime('--expires', '90m')).toBe(90 * 60_000)
    const help = await cli('token', 'create', '--help')
    expect(help.stdout).toContain('--expires-in <duration>')
    expect(help.stdout).not.toMatch(/--expires </)
  })
})
