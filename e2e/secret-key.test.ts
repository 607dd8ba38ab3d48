import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { startServer } from '@tenantry/server'
import { runCliCaptured } from '@tenantry/cli/testing'
import { resolveConfig, SecretBox, type TenantryConfig } from 'tenantry'
import { tempDir } from 'tenantry/testing'

// Issue #9 item 14, as an operator meets it: a second host on the same catalog with a key of
// its own is refused at start (CLI and server), naming TENANTRY_SECRET_KEY; `tenantry
// secret-key rotate` re-seals everything, with a key file or with the variable.

const root = tempDir('tenantry-secret-key-cli-')
afterAll(() => root.cleanup())

const PG_URL = 'postgres://owner:pa55word@127.0.0.1:5432/byod'

/** A host's directory with its config file: its own home, the shared catalog, a Postgres data source (never connected to here). */
function host(name: string, catalog: string): { dir: string; config: TenantryConfig } {
  const dir = join(root.path, name)
  mkdirSync(dir, { recursive: true })
  const config: TenantryConfig = {
    home: join(dir, 'home'),
    catalogUrl: catalog,
    dataSources: [
      { id: 'local', engine: 'sqlite' },
      { id: 'byod', engine: 'postgres', url: PG_URL },
    ],
  }
  writeFileSync(join(dir, 'tenantry.config.mjs'), `export default ${JSON.stringify(config)}\n`)
  return { dir, config }
}

function cli(at: { dir: string }, argv: string[], key?: string) {
  return runCliCaptured(argv, { cwd: at.dir, env: { TENANTRY_HOME: undefined, TENANTRY_CATALOG_URL: undefined, TENANTRY_SECRET_KEY: key } })
}

describe('the secret key is a deployment secret', () => {
  it('a second host with a key of its own: `tenantry start` and startServer refuse, naming TENANTRY_SECRET_KEY', async () => {
    const catalog = join(root.path, 'shared.db')
    const first = host('first', catalog)
    const second = host('second', catalog)
    expect((await cli(first, ['tenant', 'list', '--json'])).code).toBe(0)

    const started = await cli(second, ['start', '--no-server'], SecretBox.generateKey())
    expect(started.code).toBe(1)
    expect(started.stderr).toMatch(/TENANTRY_SECRET_KEY does not open the secrets sealed in the catalog \(data source "byod"\)/)

    const withoutKey = await cli(second, ['start', '--no-server'])
    expect(withoutKey.code).toBe(1)
    expect(withoutKey.stderr).toMatch(/No secret key, and the catalog holds .* Set TENANTRY_SECRET_KEY/)

    await expect(startServer({ config: resolveConfig(second.config, { env: {} }), port: 0, handleSignals: false, app: { logger: false } })).rejects.toThrow(
      /Set TENANTRY_SECRET_KEY to this deployment's secret key/,
    )

    // With the deployment's key it opens.
    const key = readFileSync(join(first.config.home!, 'secret.key'), 'utf8').trim()
    expect((await cli(second, ['tenant', 'list', '--json'], key)).code).toBe(0)
  })

  it('`secret-key rotate` with a key file replaces the file; the old key no longer opens the catalog', async () => {
    const at = host('rotate-file', join(root.path, 'rotate-file.db'))
    expect((await cli(at, ['tenant', 'list', '--json'])).code).toBe(0)
    const keyFile = join(at.config.home!, 'secret.key')
    const oldKey = readFileSync(keyFile, 'utf8').trim()

    const rotated = await cli(at, ['secret-key', 'rotate', '--json'])
    expect(rotated.code, rotated.stderr).toBe(0)
    expect(JSON.parse(rotated.stdout)).toEqual({ resealed: 2, keyFile })
    const newKey = readFileSync(keyFile, 'utf8').trim()
    expect(newKey).not.toBe(oldKey)
    expect(rotated.stdout).not.toContain(newKey)

    expect((await cli(at, ['tenant', 'list', '--json'])).code).toBe(0)
    expect((await cli(at, ['tenant', 'list', '--json'], oldKey)).stderr).toMatch(/TENANTRY_SECRET_KEY does not open/)
  })

  it('`secret-key rotate` with TENANTRY_SECRET_KEY prints the new key once; only it opens the catalog', async () => {
    const at = host('rotate-env', join(root.path, 'rotate-env.db'))
    const oldKey = SecretBox.generateKey()
    expect((await cli(at, ['tenant', 'list', '--json'], oldKey)).code).toBe(0)

    const rotated = await cli(at, ['secret-key', 'rotate'], oldKey)
    expect(rotated.code, rotated.stderr).toBe(0)
    const newKey = rotated.stdout.split('\n')[1]!
    expect(rotated.stdout).toMatch(/save it as TENANTRY_SECRET_KEY/)
    expect(SecretBox.decodeKey(newKey, 'printed key')).toHaveLength(32)

    const refused = await cli(at, ['tenant', 'list', '--json'], oldKey)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/TENANTRY_SECRET_KEY does not open/)
    expect((await cli(at, ['tenant', 'list', '--json'], newKey)).code).toBe(0)
  })
})
