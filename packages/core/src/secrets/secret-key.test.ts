import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Catalog } from '../catalog/catalog.js'
import { createTenantry } from '../tenantry.js'
import type { TenantryConfig } from '../config.js'
import { tempDir } from '../testing/services.js'
import { SecretBox } from './secret-box.js'
import { openSecretBox, rotateSecretKey } from './secret-key.js'

// Issue #9 item 14: the secret key is a deployment secret. A second host on the same catalog
// used to create a key of its own, silently, and BYOD data sources then failed to open one by
// one. Now the start is refused, naming TENANTRY_SECRET_KEY; rotation re-seals everything.

const root = tempDir('tenantry-secret-key-')
afterAll(() => root.cleanup())

const PG_URL = 'postgres://owner:pa55word@127.0.0.1:5432/byod'
const NO_KEY: NodeJS.ProcessEnv = {}

/** A home on the shared catalog `catalog`, whose config declares a Postgres data source (sealed in the catalog; never connected to here). */
function hostConfig(name: string, catalog: string): TenantryConfig {
  return {
    home: join(root.path, name),
    catalogUrl: catalog,
    dataSources: [
      { id: 'local', engine: 'sqlite' },
      { id: 'byod', engine: 'postgres', url: PG_URL },
    ],
  }
}

/** Opens the catalog alone, as `createTenantry` does before it reads any secret. */
async function withCatalog<T>(url: string, fn: (catalog: Catalog) => Promise<T>): Promise<T> {
  const catalog = Catalog.open({ url })
  try {
    await catalog.migrate()
    return await fn(catalog)
  } finally {
    await catalog.close()
  }
}

async function sealedUrl(catalog: Catalog): Promise<string> {
  return (await catalog.findDataSource('byod'))!.secret!
}

describe('a second host on the same catalog', () => {
  const catalogUrl = join(root.path, 'shared-catalog.db')
  const first = hostConfig('first', catalogUrl)
  const second = hostConfig('second', catalogUrl)

  it('the first host creates the key file when it seals the first secret', async () => {
    expect(process.env.TENANTRY_SECRET_KEY, 'run these tests without TENANTRY_SECRET_KEY').toBeUndefined()
    const tenantry = await createTenantry(first)
    await tenantry.close()
    expect(existsSync(join(first.home!, 'secret.key'))).toBe(true)
  })

  it('with no key, is refused (naming TENANTRY_SECRET_KEY) and creates none', async () => {
    await expect(createTenantry(second)).rejects.toThrow(/No secret key, and the catalog holds 1 sealed secret\(s\) \(data source "byod"\).*Set TENANTRY_SECRET_KEY/)
    expect(existsSync(join(second.home!, 'secret.key'))).toBe(false)
  })

  it('with a key file of its own, is refused naming TENANTRY_SECRET_KEY', async () => {
    mkdirSync(second.home!, { recursive: true })
    writeFileSync(join(second.home!, 'secret.key'), `${SecretBox.generateKey()}\n`, { mode: 0o600 })
    await expect(createTenantry(second)).rejects.toThrow(/secret\.key does not open the secrets sealed in the catalog \(data source "byod"\).*Set TENANTRY_SECRET_KEY/)
  })

  it('with TENANTRY_SECRET_KEY set to another key, is refused; set to the deployment key, opens', async () => {
    const deploymentKey = readFileSync(join(first.home!, 'secret.key'), 'utf8').trim()
    await withCatalog(catalogUrl, async (catalog) => {
      await expect(openSecretBox(catalog, second.home!, { TENANTRY_SECRET_KEY: SecretBox.generateKey() })).rejects.toThrow(
        /^TENANTRY_SECRET_KEY does not open the secrets sealed in the catalog \(data source "byod"\)/,
      )
      const box = await openSecretBox(catalog, second.home!, { TENANTRY_SECRET_KEY: deploymentKey })
      expect(box.open(await sealedUrl(catalog), 'data-source:byod')).toBe(PG_URL)
    })
  })
})

describe('rotation', () => {
  it('with a key file: re-seals everything in the catalog; the new key opens it, the old does not; derived secrets stay', async () => {
    const config = hostConfig('rotate-file', join(root.path, 'rotate-file.db'))
    await (await createTenantry(config)).close()
    const keyFile = join(config.home!, 'secret.key')
    const oldKey = SecretBox.decodeKey(readFileSync(keyFile, 'utf8'), keyFile)

    await withCatalog(config.catalogUrl!, async (catalog) => {
      const before = await openSecretBox(catalog, config.home!, NO_KEY)
      const derived = before.derive('postgres-app-role:byod')
      const result = await rotateSecretKey(catalog, config.home!, NO_KEY)
      expect(result).toEqual({ source: { kind: 'file', path: keyFile }, resealed: 2 })
      expect(existsSync(`${keyFile}.new`)).toBe(false)

      const newKey = SecretBox.decodeKey(readFileSync(keyFile, 'utf8'), keyFile)
      expect(newKey.equals(oldKey)).toBe(false)
      expect(new SecretBox(newKey).open(await sealedUrl(catalog), 'data-source:byod')).toBe(PG_URL)
      const resealed = await sealedUrl(catalog)
      expect(() => new SecretBox(oldKey).open(resealed, 'data-source:byod')).toThrow(/cannot be decrypted with this key/)
      await expect(openSecretBox(catalog, config.home!, { TENANTRY_SECRET_KEY: oldKey.toString('base64') })).rejects.toThrow(/TENANTRY_SECRET_KEY does not open/)

      const after = await openSecretBox(catalog, config.home!, NO_KEY)
      expect(after.open(await sealedUrl(catalog), 'data-source:byod')).toBe(PG_URL)
      // Role passwords were derived from the old key and live in the databases: they must not change.
      expect(after.derive('postgres-app-role:byod')).toBe(derived)

      // A second rotation keeps the same derivation root.
      await rotateSecretKey(catalog, config.home!, NO_KEY)
      expect((await openSecretBox(catalog, config.home!, NO_KEY)).derive('postgres-app-role:byod')).toBe(derived)
    })
    // And the whole instance opens on the rotated key.
    await (await createTenantry(config)).close()
  })

  it('a crash after the catalog committed and before the key file was replaced: the next open finishes it', async () => {
    const config = hostConfig('rotate-crash', join(root.path, 'rotate-crash.db'))
    await (await createTenantry(config)).close()
    const keyFile = join(config.home!, 'secret.key')
    await withCatalog(config.catalogUrl!, async (catalog) => {
      const oldFile = readFileSync(keyFile, 'utf8')
      await expect(
        rotateSecretKey(catalog, config.home!, NO_KEY, {
          beforeSave: () => {
            throw new Error('crash')
          },
        }),
      ).rejects.toThrow('crash')
      expect(readFileSync(keyFile, 'utf8')).toBe(oldFile)
      const pending = readFileSync(`${keyFile}.new`, 'utf8')

      const box = await openSecretBox(catalog, config.home!, NO_KEY)
      expect(box.open(await sealedUrl(catalog), 'data-source:byod')).toBe(PG_URL)
      expect(readFileSync(keyFile, 'utf8')).toBe(pending)
      expect(existsSync(`${keyFile}.new`)).toBe(false)
    })
  })

  it('a crash before the catalog committed: the old key stays, the new one is discarded', async () => {
    const config = hostConfig('rotate-early', join(root.path, 'rotate-early.db'))
    await (await createTenantry(config)).close()
    const keyFile = join(config.home!, 'secret.key')
    const oldFile = readFileSync(keyFile, 'utf8')
    // What a rotation killed after writing its new key and before its transaction leaves:
    writeFileSync(`${keyFile}.new`, `${SecretBox.generateKey()}\n`, { mode: 0o600 })
    await (await createTenantry(config)).close()
    expect(readFileSync(keyFile, 'utf8')).toBe(oldFile)
    expect(existsSync(`${keyFile}.new`)).toBe(false)
  })

  it('with TENANTRY_SECRET_KEY: hands the new key over before the catalog changes; only the new key opens it', async () => {
    const config = hostConfig('rotate-env', join(root.path, 'rotate-env.db'))
    const oldKey = SecretBox.generateKey()
    await withCatalog(config.catalogUrl!, async (catalog) => {
      const box = await openSecretBox(catalog, config.home!, { TENANTRY_SECRET_KEY: oldKey })
      await catalog.upsertDataSource({ id: 'byod', engine: 'postgres', mode: 'byod', config: {}, capacity: null, region: null, secret: box.seal(PG_URL, 'data-source:byod') })
      // The key is handed over before the catalog changes: if showing it fails, nothing changes.
      const before = await sealedUrl(catalog)
      await expect(
        rotateSecretKey(catalog, config.home!, { TENANTRY_SECRET_KEY: oldKey }, {
          onNewKey: () => {
            throw new Error('stdout closed')
          },
        }),
      ).rejects.toThrow('stdout closed')
      expect(await sealedUrl(catalog)).toBe(before)

      let handed: string | undefined
      await rotateSecretKey(catalog, config.home!, { TENANTRY_SECRET_KEY: oldKey }, { onNewKey: (key) => (handed = key) })
      expect(handed).toBeDefined()
      expect(existsSync(join(config.home!, 'secret.key'))).toBe(false)
      await expect(openSecretBox(catalog, config.home!, { TENANTRY_SECRET_KEY: oldKey })).rejects.toThrow(/TENANTRY_SECRET_KEY does not open/)
      const next = await openSecretBox(catalog, config.home!, { TENANTRY_SECRET_KEY: handed })
      expect(next.open(await sealedUrl(catalog), 'data-source:byod')).toBe(PG_URL)
    })
  })
})
