import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadConfig, resolveConfig } from './config.js'
import { tempDir } from './testing/services.js'

describe('config', () => {
  let dir: ReturnType<typeof tempDir>
  beforeEach(() => (dir = tempDir()))
  afterEach(() => dir.cleanup())

  it('defaults to the embedded SQLite setup under TENANTRY_HOME', () => {
    const config = resolveConfig({}, { env: { TENANTRY_HOME: dir.path } })
    expect(config.home).toBe(dir.path)
    expect(config.catalogUrl).toBe(join(dir.path, 'catalog.db'))
    expect(config.dataSources).toEqual([{ id: 'local', engine: 'sqlite', directory: join(dir.path, 'tenants') }])
    expect(config.defaults).toEqual({ isolation: 'database', dataSource: 'local', placement: 'default' })
  })

  it('takes a Postgres catalog from TENANTRY_CATALOG_URL as it is', () => {
    const url = 'postgres://postgres@127.0.0.1:5432/catalog'
    expect(resolveConfig({}, { env: { TENANTRY_HOME: dir.path, TENANTRY_CATALOG_URL: url } }).catalogUrl).toBe(url)
  })

  it('loads a TypeScript config file and resolves its paths against its directory', async () => {
    mkdirSync(join(dir.path, 'app'))
    writeFileSync(
      join(dir.path, 'app', 'tenantry.config.ts'),
      `import { defineConfig } from 'tenantry'
       const home: string = './data'
       export default defineConfig({ home, migrations: { tenant: './migrations' }, router: { maxOpenHandles: 8 } })\n`,
    )
    const config = await loadConfig(join(dir.path, 'app', 'tenantry.config.ts'), {})
    expect(config.home).toBe(join(dir.path, 'app', 'data'))
    expect(config.tenantMigrations).toBe(join(dir.path, 'app', 'migrations'))
    expect(config.router).toEqual({ maxOpenHandles: 8 })
  })

  it('keeps the default home next to the config file, not in the working directory', () => {
    // Regression: from a subdirectory of the project the CLI opened a second, empty catalog in ./.tenantry.
    expect(resolveConfig({}, { root: join(dir.path, 'app'), env: {} }).home).toBe(join(dir.path, 'app', '.tenantry'))
  })

  it('refuses a bad data source id, an unknown default and a missing file with clear errors', async () => {
    expect(() => resolveConfig({ dataSources: [{ id: '../etc', engine: 'sqlite' }] })).toThrowError(
      expect.objectContaining({ code: 'INVALID_IDENTIFIER' }),
    )
    expect(() => resolveConfig({ defaults: { dataSource: 'nope' } })).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }))
    await expect(loadConfig(join(dir.path, 'missing.config.ts'))).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
    writeFileSync(join(dir.path, 'broken.config.ts'), 'export default {{{')
    await expect(loadConfig(join(dir.path, 'broken.config.ts'))).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
  })
})
