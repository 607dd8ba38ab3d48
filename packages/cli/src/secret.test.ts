import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createTenantry, loadConfig, type SecretRecord } from 'tenantry'
import { tempDir } from 'tenantry/testing'
import { CLI_BIN, runCliCaptured, type CliRun } from '@tenantry/cli/testing'

// Issue 12: `tenantry secret set|list|delete <slug> <name>`, the built CLI run as a user would.
// Values come from stdin, an environment variable or a file, and are never printed.

const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const dir = tempDir('tenantry-cli-secret-')
const home = dir.path
const STRIPE = 'sk_live_cli_7dQw9ZxKp2LmN4bV6cR8tY1u'
const env = { TENANTRY_HOME: home, TENANTRY_CATALOG_URL: undefined, TENANTRY_DEBUG: undefined, TENANTRY_SECRET_KEY: undefined }
afterAll(() => dir.cleanup())

function cli(...args: string[]): Promise<CliRun> {
  return runCliCaptured(args, { cwd: REPO, env: { ...env, STRIPE_FROM_ENV: STRIPE } })
}

/** The CLI with `input` on its stdin. */
function cliWithStdin(input: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TENANTRY_HOME: home }
  for (const name of ['TENANTRY_CATALOG_URL', 'TENANTRY_DEBUG', 'TENANTRY_SECRET_KEY']) delete childEnv[name]
  try {
    const stdout = execFileSync(process.execPath, [CLI_BIN, ...args], { cwd: REPO, env: childEnv, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })
    return { code: 0, stdout, stderr: '' }
  } catch (error) {
    const e = error as { status: number; stdout: string; stderr: string }
    return { code: e.status, stdout: e.stdout, stderr: e.stderr }
  }
}

/** The values as server-side code reads them, from this process. */
async function readSecrets(slug: string, names: string[]): Promise<Array<string | undefined>> {
  const saved = process.env.TENANTRY_SECRET_KEY
  delete process.env.TENANTRY_SECRET_KEY
  const tenantry = await createTenantry(await loadConfig(join(REPO, 'tenantry.config.ts'), { ...process.env, TENANTRY_HOME: home }))
  try {
    return await tenantry.withTenant(slug, () => Promise.all(names.map((name) => tenantry.secrets.get(name))))
  } finally {
    await tenantry.close()
    if (saved !== undefined) process.env.TENANTRY_SECRET_KEY = saved
  }
}

describe('tenantry secret', () => {
  it('sets from an environment variable, a file or stdin; lists names, never values; deletes', async () => {
    expect((await cli('tenant', 'create', 'acme')).code).toBe(0)
    const fromEnv = await cli('secret', 'set', 'acme', 'STRIPE_SECRET_KEY', '--from-env', 'STRIPE_FROM_ENV', '--json')
    expect(fromEnv.code, fromEnv.stderr).toBe(0)
    expect(JSON.parse(fromEnv.stdout)).toMatchObject({ name: 'STRIPE_SECRET_KEY', createdBy: expect.stringMatching(/^cli/) })
    expect(fromEnv.stdout).not.toContain(STRIPE)

    const file = join(home, 'resend.txt')
    writeFileSync(file, 're_from_file\n')
    const fromFile = await cli('secret', 'set', 'acme', 'resend.api-key', '--from-file', file)
    expect(fromFile.code, fromFile.stderr).toBe(0)
    expect(fromFile.stdout).toContain('Secret resend.api-key of tenant acme set.')

    const fromStdin = cliWithStdin('whsec_from_stdin\n', 'secret', 'set', 'acme', 'WEBHOOK_SECRET')
    expect(fromStdin.code, fromStdin.stderr).toBe(0)

    const listed = await cli('secret', 'list', 'acme')
    expect(listed.code).toBe(0)
    expect(listed.stdout.split('\n')[0]).toMatch(/^NAME\s+UPDATED\s+UPDATED BY\s+CREATED$/)
    const listedJson = await cli('secret', 'list', 'acme', '--json')
    expect((JSON.parse(listedJson.stdout) as SecretRecord[]).map((s) => s.name)).toEqual(['STRIPE_SECRET_KEY', 'WEBHOOK_SECRET', 'resend.api-key'])
    for (const output of [listed.stdout, listedJson.stdout]) {
      for (const value of [STRIPE, 're_from_file', 'whsec_from_stdin']) expect(output).not.toContain(value)
    }
    // Nor in the catalog: sealed with acme's data key.
    const catalog = readdirSync(home).filter((f) => f.startsWith('catalog')).map((f) => readFileSync(join(home, f)).toString('latin1')).join('')
    expect(catalog).not.toContain(STRIPE)

    expect(await readSecrets('acme', ['STRIPE_SECRET_KEY', 'resend.api-key', 'WEBHOOK_SECRET'])).toEqual([STRIPE, 're_from_file', 'whsec_from_stdin'])

    const deleted = await cli('secret', 'delete', 'acme', 'WEBHOOK_SECRET')
    expect(deleted.code, deleted.stderr).toBe(0)
    const again = await cli('secret', 'delete', 'acme', 'WEBHOOK_SECRET')
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('no secret named WEBHOOK_SECRET')
  }, 300_000)

  it('secret-key rotate re-wraps the tenant keys and every value still reads', async () => {
    const rotated = await cli('secret-key', 'rotate', '--json')
    expect(rotated.code, rotated.stderr).toBe(0)
    expect(JSON.parse(rotated.stdout).resealed).toBeGreaterThanOrEqual(2)
    expect(await readSecrets('acme', ['STRIPE_SECRET_KEY', 'resend.api-key'])).toEqual([STRIPE, 're_from_file'])
  }, 180_000)

  it('refuses bad input with exit 2 and changes nothing', async () => {
    const before = (await cli('secret', 'list', 'acme', '--json')).stdout
    for (const args of [
      ['secret', 'set', 'acme', '1BAD', '--from-env', 'STRIPE_FROM_ENV'],
      ['secret', 'set', 'ACME', 'OK', '--from-env', 'STRIPE_FROM_ENV'],
      ['secret', 'set', 'acme', 'OK', '--from-env', 'NOT_SET_ANYWHERE_42'],
      ['secret', 'set', 'acme', 'OK', '--from-file', join(home, 'missing.txt')],
      ['secret', 'set', 'acme', 'OK', '--from-env', 'STRIPE_FROM_ENV', '--from-file', join(home, 'resend.txt')],
      ['secret', 'delete', 'acme', 'a/b'],
    ]) {
      const run = await cli(...args)
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(2)
      expect(run.stderr).toMatch(/^tenantry: /)
    }
    expect(cliWithStdin('', 'secret', 'set', 'acme', 'EMPTY').code).toBe(2)
    expect((await cli('secret', 'list', 'acme', '--json')).stdout).toBe(before)
    // A tenant that does not exist.
    const missing = await cli('secret', 'list', 'nobody')
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('nobody')
  }, 300_000)
})
