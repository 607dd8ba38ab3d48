/**
 * Hrana 3 over HTTP (JSON) with libSQL's own protocol client, `@libsql/hrana-client` 0.10,
 * which runs batches through `/v3/cursor`.
 *
 * No released JS client asks for JSON v3 by itself: `@libsql/client` (up to 0.18) opens HTTP
 * connections at version 2, and hrana-client's version probe lists only `/v3-protobuf` (its
 * JSON `/v3` entry is commented out), which the server offers too (hrana-protobuf.test.ts). So
 * the test puts that entry, exactly as the client spells it, first in the probe list the client
 * module exports, then lets the client negotiate.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import * as hrana from '@libsql/hrana-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TenantryConfig } from 'tenantry'
import { startTestServer, type TestServer } from '../testing/index.js'

let server: TestServer
const tokens = {} as Record<'rw' | 'ro', string>
const clients: hrana.HttpClient[] = []
const open = (token: string) => {
  const client = hrana.openHttp(server.url, token, undefined, undefined, 3)
  clients.push(client)
  return client
}

beforeAll(async () => {
  // The module index.js loads (lib-esm/http/client.js), reached by its file: the package exports only its index.
  const cjsIndex = createRequire(import.meta.url).resolve('@libsql/hrana-client')
  const clientModule = pathToFileURL(join(dirname(cjsIndex), '..', 'lib-esm', 'http', 'client.js')).href
  const { checkEndpoints } = (await import(clientModule)) as { checkEndpoints: Array<Record<string, unknown>> }
  if (!checkEndpoints.some((e) => e.versionPath === 'v3')) {
    checkEndpoints.unshift({ versionPath: 'v3', pipelinePath: 'v3/pipeline', cursorPath: 'v3/cursor', version: 3, encoding: 'json' })
  }
  server = await startTestServer({
    config: {
      migrations: {
        tenant: {
          '0001_notes': {
            up: async (db) => {
              await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('title', 'text', (c) => c.notNull()).execute()
            },
          },
        },
      },
    } as TenantryConfig,
  })
  await server.tenantry.createTenant({ slug: 'acme' })
  await server.tenantry.withTenant('acme', () => server.tenantry.db().insertInto('notes').values([{ id: 1, title: 'one' }, { id: 2, title: 'two' }]).execute())
  tokens.rw = (await server.tenantry.tokens.create('acme', { readOnly: false })).token
  tokens.ro = (await server.tenantry.tokens.create('acme', { readOnly: true })).token
})

afterAll(async () => {
  for (const client of clients) client.close()
  await server?.stop()
})

describe('Hrana 3 over HTTP with @libsql/hrana-client', () => {
  it('negotiates version 3 and runs statements, stored SQL, describe, sequence and autocommit', async () => {
    const client = open(tokens.rw)
    expect(await client.getVersion()).toBe(3)
    const stream = client.openStream()
    try {
      expect((await stream.queryValue(['SELECT title FROM notes WHERE id = ?2 AND ?1 = 1', [1, 2]])).value).toBe('two')
      const stored = stream.storeSql('SELECT count(*) FROM notes WHERE id >= :min')
      expect((await stream.queryValue([stored, { min: 2 }])).value).toBe(1)
      stored.close()
      const described = await stream.describe('SELECT id, title FROM notes WHERE id = ?')
      expect(described).toMatchObject({ paramNames: [undefined], columns: [{ name: 'id', decltype: 'INTEGER' }, { name: 'title', decltype: 'TEXT' }], isExplain: false, isReadonly: true })
      expect(await stream.getAutocommit()).toBe(true)
      await stream.sequence("BEGIN; INSERT INTO notes (id, title) VALUES (3, 'three');")
      expect(await stream.getAutocommit()).toBe(false)
      await stream.run('ROLLBACK')
      expect((await stream.queryValue('SELECT count(*) FROM notes')).value).toBe(2)
    } finally {
      stream.close()
    }
  })

  it('runs batches through /v3/cursor, conditions included, and read-only rules apply per step', async () => {
    const client = open(tokens.ro)
    expect(await client.getVersion()).toBe(3)
    const stream = client.openStream()
    try {
      const batch = stream.batch(true)
      const beginStep = batch.step()
      const begin = beginStep.run('BEGIN IMMEDIATE')
      const rowsStep = batch.step().condition(hrana.BatchCond.ok(beginStep))
      const rows = rowsStep.query('SELECT id, title FROM notes ORDER BY id')
      const writeStep = batch.step().condition(hrana.BatchCond.ok(rowsStep))
      const write = writeStep.run("UPDATE notes SET title = 'x'").catch((e: unknown) => e)
      const after = batch.step().condition(hrana.BatchCond.error(writeStep)).queryValue('SELECT count(*) FROM notes')
      const commit = batch.step().condition(hrana.BatchCond.not(hrana.BatchCond.isAutocommit(batch))).run('COMMIT')
      await batch.execute()
      await begin
      expect((await rows)!.rows.map((r) => r.title)).toEqual(['one', 'two'])
      expect(await write).toMatchObject({ code: 'READ_ONLY' })
      expect((await after)!.value).toBe(2)
      expect(await commit).toBeDefined()
      expect(await stream.getAutocommit()).toBe(true)
    } finally {
      stream.close()
    }
  })
})
