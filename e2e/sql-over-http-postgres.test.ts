/**
 * SQL-over-HTTP speaks SQLite, on a tenant's own SQLite file: a Postgres tenant (schema
 * isolation here) is refused on every Hrana entry point, cursors included, with a clear
 * `403 SQL_UNAVAILABLE`, before any SQL of the request runs; nothing of its data leaves.
 */
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createTenantry, type Tenantry } from 'tenantry'
import { startServer, type RunningServer } from '@tenantry/server'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir } from 'tenantry/testing'

const MIGRATIONS = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const SECRET = 'PG-ONLY-5d1e'
const postgres = await findPostgres()

describe.skipIf('skip' in postgres)('SQL-over-HTTP for a Postgres tenant (schema isolation)', () => {
  const serverUrl = 'url' in postgres ? postgres.url : ''
  const dir = tempDir('tenantry-sql-pg-')
  const dataSource = `sqlhttp_${process.pid}`
  let data: { url: string; drop(): Promise<void> }
  let tenantry: Tenantry
  let server: RunningServer
  let token: string

  beforeAll(async () => {
    data = await createTestDatabase(serverUrl, 'tenantry_sqlhttp')
    tenantry = await createTenantry({
      home: dir.path,
      catalogUrl: `${dir.path}/catalog.db`,
      migrations: { tenant: MIGRATIONS },
      dataSources: [{ id: dataSource, engine: 'postgres', url: data.url, isolations: ['schema'] }],
      defaults: { isolation: 'schema', dataSource },
    })
    await tenantry.tenants.create({ slug: 'pg' })
    await tenantry.withTenant('pg', () => tenantry.db().insertInto('jobs').values({ company: SECRET, title: 'x', start_date: '2024-01-01' }).execute())
    token = (await tenantry.tokens.create('pg', { readOnly: true })).token
    server = await startServer({ tenantry, port: 0, handleSignals: false, repair: false, app: { logger: false } })
  })

  afterAll(async () => {
    await server?.close()
    await tenantry?.close()
    await data?.drop()
    await dropAppRoles(serverUrl, [dataSource])
    dir.cleanup()
  })

  const post = async (path: string, body: object) => {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    return { status: response.status, text: await response.text() }
  }

  it('refuses /v3/cursor and the pipelines with 403 SQL_UNAVAILABLE, sending none of its rows', async () => {
    const select = { sql: 'SELECT company FROM jobs' }
    for (const [path, body] of [
      ['/v3/cursor', { baton: null, batch: { steps: [{ stmt: select }] } }],
      ['/v3/pipeline', { requests: [{ type: 'execute', stmt: select }] }],
      ['/v2/pipeline', { requests: [{ type: 'execute', stmt: select }] }],
    ] as const) {
      const answer = await post(path, body)
      expect(answer.status).toBe(403)
      expect(JSON.parse(answer.text)).toMatchObject({ code: 'SQL_UNAVAILABLE' })
      expect(answer.text).not.toContain(SECRET)
    }
  })

  it('refuses a WebSocket stream, and so its cursors, with SQL_UNAVAILABLE', async () => {
    const socket = new WebSocket(server.url.replace('http:', 'ws:'), 'hrana3')
    const received: any[] = []
    const answered = new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.on('message', (data) => {
        received.push(JSON.parse(String(data)))
        if (received.length === 3) resolve()
      })
    })
    await new Promise((resolve) => socket.once('open', resolve))
    socket.send(JSON.stringify({ type: 'hello', jwt: token }))
    socket.send(JSON.stringify({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } }))
    socket.send(
      JSON.stringify({ type: 'request', request_id: 2, request: { type: 'open_cursor', stream_id: 1, cursor_id: 1, batch: { steps: [{ stmt: { sql: 'SELECT company FROM jobs' } }] } } }),
    )
    await answered
    socket.close()
    expect(received[0]).toEqual({ type: 'hello_ok' })
    expect(received.slice(1)).toEqual([
      { type: 'response_error', request_id: 1, error: expect.objectContaining({ code: 'SQL_UNAVAILABLE' }) },
      { type: 'response_error', request_id: 2, error: expect.objectContaining({ code: 'SQL_UNAVAILABLE' }) },
    ])
    expect(JSON.stringify(received)).not.toContain(SECRET)
  })
})
