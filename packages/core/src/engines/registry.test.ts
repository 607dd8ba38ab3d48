import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { SecretBox } from '../secrets/secret-box.js'
import { describeDataSource, parseDataSourceConfig, registerEngine, registeredEngines, toDataSourceRecord } from './registry.js'
import { SQLITE_ENGINE } from './sqlite/sqlite-definition.js'

const box = new SecretBox(randomBytes(32))

describe('engine registry', () => {
  it('knows the built-in engines, which cannot be replaced', () => {
    expect(registeredEngines()).toEqual(['sqlite', 'postgres'])
    expect(() => registerEngine({ ...SQLITE_ENGINE })).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }))
  })

  it("checks each data source against its engine's schema and names the field that is wrong", () => {
    const refused = (input: unknown, field: string) =>
      expect(() => parseDataSourceConfig(input), field).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG', details: expect.objectContaining({ field }) }))
    // Regression: a misspelled setting was silently ignored and its default used.
    refused({ id: 'local', engine: 'sqlite', directory: '/d', synchronus: 'FULL' }, 'synchronus')
    refused({ id: 'local', engine: 'sqlite', directory: '/d', synchronous: 'fast' }, 'synchronous')
    refused({ id: 'pg', engine: 'postgres' }, 'url')
    refused({ id: 'pg', engine: 'postgres', url: 'postgres://u@h/d', isolations: ['rows'] }, 'isolations.0')
    refused({ id: 'pg', engine: 'postgres', url: 'postgres://u@h/d', poolSize: 0 }, 'poolSize')
    refused({ id: 'pg', engine: 'postgres', url: 'postgres://u@h/d', mode: 'private' }, 'mode')
    expect(() => parseDataSourceConfig({ id: 'x', engine: 'mysql' })).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(/unknown engine mysql/) }))
    expect(() => parseDataSourceConfig({ id: '../x', engine: 'sqlite', directory: '/d' })).toThrowError(expect.objectContaining({ code: 'INVALID_IDENTIFIER' }))
    expect(parseDataSourceConfig({ id: 'local', engine: 'sqlite', directory: '/d', capacity: 3 })).toEqual({ id: 'local', engine: 'sqlite', directory: '/d', capacity: 3 })
  })

  it('records a Postgres data source with its URL sealed, and describes it without credentials', () => {
    const url = 'postgres://admin:s3cret-Pa55@db.internal:6543/tenants'
    const record = toDataSourceRecord({ id: 'main', engine: 'postgres', url, isolations: ['schema'] }, box)
    expect(record).toMatchObject({ id: 'main', engine: 'postgres', mode: 'shared', config: { host: 'db.internal', port: 6543, database: 'tenants', user: 'admin', isolations: ['schema'] } })
    expect(JSON.stringify(record.config)).not.toContain('s3cret')
    expect(box.open(record.secret!, 'data-source:main')).toBe(url)
    expect(describeDataSource(record)).toBe('postgres admin@db.internal:6543/tenants')
    expect(() => toDataSourceRecord({ id: 'p'.repeat(50), engine: 'postgres', url }, box)).toThrowError(expect.objectContaining({ code: 'INVALID_IDENTIFIER' }))
    expect(() => toDataSourceRecord({ id: 'main', engine: 'postgres', url: 'mysql://x@y/z' }, box)).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }))
  })
})
