import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../testing/services.js'
import { Catalog } from './catalog.js'

/** `updateDataSource`: what an operator may change of a recorded data source (the admin API's PATCH). */
describe('catalog.updateDataSource', () => {
  const dir = tempDir()
  let catalog: Catalog
  beforeAll(async () => {
    catalog = Catalog.open({ url: join(dir.path, 'catalog.db') })
    await catalog.migrate()
    await catalog.upsertDataSource({ id: 'eu', engine: 'sqlite', mode: 'shared', config: { directory: '/d' }, capacity: 10, region: 'eu', secret: 'sealed' })
  })
  afterAll(async () => {
    await catalog.close()
    dir.cleanup()
  })

  it('changes capacity, region and mode, keeps what is absent, and never touches engine, config or secret', async () => {
    const before = (await catalog.findDataSource('eu'))!
    expect(await catalog.updateDataSource('eu', { capacity: 25 })).toEqual({ ...before, capacity: 25 })
    expect(await catalog.updateDataSource('eu', { region: null, mode: 'dedicated' })).toEqual({ ...before, capacity: 25, region: null, mode: 'dedicated' })
    expect(await catalog.updateDataSource('eu', { capacity: null })).toMatchObject({ capacity: null, config: { directory: '/d' }, secret: 'sealed', engine: 'sqlite' })
    // Nothing to change: the record as it is.
    expect(await catalog.updateDataSource('eu', {})).toMatchObject({ id: 'eu', capacity: null, mode: 'dedicated' })
  })

  it('answers undefined for an unknown id', async () => {
    expect(await catalog.updateDataSource('nope', { capacity: 1 })).toBeUndefined()
  })
})
