import { request as httpRequest } from 'node:http'
import { fileURLToPath } from 'node:url'
import { dirname } from 'node:path'
import type { TenantryConfig } from 'tenantry'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, signUp, startTestServer, type TestServer } from '../testing/index.js'
import { parseRange } from './files.js'

// Issue 12: a tenant's files over HTTP: raw uploads with their content type, downloads with
// ranges (206, 416), listing, deleting; read-only tokens read only; other tenants see nothing.

const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))
const repoConfig = (await import(REPO_CONFIG)).default as TenantryConfig

let server: TestServer
let owner: Client
let stranger: Client
let readOnly: Client
let readWrite: Client

beforeAll(async () => {
  server = await startTestServer({
    config: { ...repoConfig, quotas: { fileBytes: 2500 }, services: { files: { maxFileBytes: 1000 } } },
    root: dirname(REPO_CONFIG),
  })
  owner = await signUp(server, 'owner@files.test')
  stranger = await signUp(server, 'stranger@files.test')
  expect((await owner.post('/api/auth/organization/create', { name: 'Acme', slug: 'acme' })).status).toBe(200)
  expect((await stranger.post('/api/auth/organization/create', { name: 'Globex', slug: 'globex' })).status).toBe(200)
  const ro = await owner.post('/api/t/acme/tokens', { name: 'ro', readOnly: true })
  const rw = await owner.post('/api/t/acme/tokens', { name: 'rw' })
  readOnly = new Client(server.url, { authorization: `Bearer ${ro.body.token}` })
  readWrite = new Client(server.url, { authorization: `Bearer ${rw.body.token}` })
})
afterAll(async () => server?.stop())

const upload = (client: Client, path: string, body: string, contentType = 'text/markdown; charset=utf-8') =>
  client.request('PUT', path, body, { 'content-type': contentType })

/**
 * A request sent with its path exactly as written: `fetch` (WHATWG URL) resolves `%2e%2e` and
 * `..` before sending, so it could never show what the server does with them.
 */
function raw(client: Client, method: string, path: string, body = ''): Promise<{ status: number; code?: string }> {
  const url = new URL(server.url)
  const cookie = [...client.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers: { cookie, origin: server.url, 'content-type': 'application/octet-stream' } }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, code: text ? (JSON.parse(text) as { error?: { code?: string } }).error?.code : undefined }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

describe('tenant files over HTTP', () => {
  it('uploads a raw body with its content type and downloads it, safely served', async () => {
    const put = await upload(owner, '/api/t/acme/files/docs/hello.txt', 'hello world')
    expect(put.status).toBe(200)
    expect(put.body).toMatchObject({ path: 'docs/hello.txt', size: 11, contentType: 'text/markdown; charset=utf-8' })
    // JSON bodies are files too, stored as sent, not parsed.
    expect((await upload(owner, '/api/tenant/files/data.json', '{"a":1}', 'application/json')).status).toBe(200)

    const got = await owner.get('/api/tenant/files/docs/hello.txt')
    expect(got.status).toBe(200)
    expect(got.text).toBe('hello world')
    expect(got.headers.get('content-type')).toBe('text/markdown; charset=utf-8')
    expect(got.headers.get('accept-ranges')).toBe('bytes')
    expect(got.headers.get('x-content-type-options')).toBe('nosniff')
    expect(got.headers.get('content-security-policy')).toContain('sandbox')
    const json = await owner.get('/api/t/acme/files/data.json')
    expect(json.headers.get('content-type')).toBe('application/json')
    expect(json.text).toBe('{"a":1}')
    // The same file, by server-side code.
    expect((await server.tenantry.withTenant('acme', () => server.tenantry.files.read('docs/hello.txt')))!.toString()).toBe('hello world')
  })

  it('answers ranges with 206 and a range past the end with 416', async () => {
    const part = await owner.get('/api/t/acme/files/docs/hello.txt', { range: 'bytes=6-10' })
    expect(part.status).toBe(206)
    expect(part.text).toBe('world')
    expect(part.headers.get('content-range')).toBe('bytes 6-10/11')
    const suffix = await owner.get('/api/t/acme/files/docs/hello.txt', { range: 'bytes=-5' })
    expect([suffix.status, suffix.text]).toEqual([206, 'world'])
    const open = await owner.get('/api/t/acme/files/docs/hello.txt', { range: 'bytes=4-' })
    expect([open.status, open.text, open.headers.get('content-range')]).toEqual([206, 'o world', 'bytes 4-10/11'])
    const past = await owner.get('/api/t/acme/files/docs/hello.txt', { range: 'bytes=11-20' })
    expect(past.status).toBe(416)
    expect(past.body.error.code).toBe('RANGE_NOT_SATISFIABLE')
    expect(past.headers.get('content-range')).toBe('bytes */11')
    // Several ranges or a malformed one: the whole file.
    const whole = await owner.get('/api/t/acme/files/docs/hello.txt', { range: 'bytes=0-1,3-4' })
    expect([whole.status, whole.text]).toEqual([200, 'hello world'])
  })

  it('lists by prefix with paging, deletes, and 404s what is not there', async () => {
    for (const name of ['p/a', 'p/b', 'p/c']) expect((await upload(owner, `/api/t/acme/files/${name}`, name)).status).toBe(200)
    const first = await owner.get('/api/t/acme/files?prefix=p/&limit=2')
    expect(first.status).toBe(200)
    expect(first.body.items.map((f: { path: string }) => f.path)).toEqual(['p/a', 'p/b'])
    const next = await owner.get(`/api/t/acme/files?prefix=p/&limit=2&cursor=${encodeURIComponent(first.body.nextCursor)}`)
    expect(next.body).toMatchObject({ items: [{ path: 'p/c', size: 3 }] })
    expect(next.body.nextCursor).toBeUndefined()
    expect((await owner.delete('/api/t/acme/files/p/c')).status).toBe(204)
    const gone = await owner.delete('/api/t/acme/files/p/c')
    expect([gone.status, gone.body.error.code]).toEqual([404, 'NOT_FOUND'])
    expect((await owner.get('/api/t/acme/files/p/c')).status).toBe(404)
    expect((await owner.get('/api/t/acme/files?limit=0')).status).toBe(400)
    expect((await owner.get('/api/t/acme/files?prefix=../')).body.error.code).toBe('INVALID_PATH')
  })

  it('refuses hostile paths and bad content types with 400, and stores nothing', async () => {
    for (const path of ['../x', '%2e%2e/x', 'a/%2e%2e/%2e%2e/x', 'a/../../x', 'a%00b', 'a%5Cb', 'a//b', 'x%E2%80%AEtxt.exe', '%2Fetc%2Fpasswd', 'a%0Ab']) {
      expect(await raw(owner, 'PUT', `/api/t/acme/files/${path}`, 'x'), path).toEqual({ status: 400, code: 'INVALID_PATH' })
      expect(await raw(owner, 'GET', `/api/t/acme/files/${path}`), path).toEqual({ status: 400, code: 'INVALID_PATH' })
      expect(await raw(owner, 'DELETE', `/api/t/acme/files/${path}`), path).toEqual({ status: 400, code: 'INVALID_PATH' })
    }
    const badType = await upload(owner, '/api/t/acme/files/x.html', 'x', 'text/html; <script>')
    expect([badType.status, badType.body.error.code]).toEqual([400, 'INVALID_OPTION'])
    const listed = await owner.get('/api/t/acme/files')
    expect(listed.body.items.map((f: { path: string }) => f.path)).toEqual(['data.json', 'docs/hello.txt', 'p/a', 'p/b'])
  })

  it('refuses a file over the size limit (413) and past the quota (403), keeping nothing', async () => {
    const big = await upload(owner, '/api/t/acme/files/big.bin', 'x'.repeat(1001), 'application/octet-stream')
    expect([big.status, big.body.error.code]).toEqual([413, 'FILE_TOO_LARGE'])
    expect((await upload(owner, '/api/t/acme/files/one.bin', 'x'.repeat(1000))).status).toBe(200)
    expect((await upload(owner, '/api/t/acme/files/two.bin', 'x'.repeat(1000))).status).toBe(200)
    const over = await upload(owner, '/api/t/acme/files/three.bin', 'x'.repeat(1000))
    expect([over.status, over.body.error.code]).toEqual([403, 'QUOTA_EXCEEDED'])
    expect((await owner.get('/api/t/acme/files/three.bin')).status).toBe(404)
    expect((await owner.delete('/api/t/acme/files/two.bin')).status).toBe(204)
  })

  it('read-only tokens read but never write; read-write tokens write', async () => {
    expect((await readOnly.get('/api/tenant/files/docs/hello.txt')).text).toBe('hello world')
    expect((await readOnly.get('/api/tenant/files')).status).toBe(200)
    const put = await upload(readOnly, '/api/tenant/files/docs/hello.txt', 'evil')
    expect([put.status, put.body.error.code]).toEqual([403, 'READ_ONLY'])
    const del = await readOnly.delete('/api/tenant/files/docs/hello.txt')
    expect([del.status, del.body.error.code]).toEqual([403, 'READ_ONLY'])
    expect((await upload(readWrite, '/api/tenant/files/from-token.txt', 'ok')).status).toBe(200)
    expect((await owner.get('/api/t/acme/files/docs/hello.txt')).text).toBe('hello world')
  })

  it('with a session cookie, refuses a form or text/plain upload (any site could send one) with 415; a token may', async () => {
    for (const contentType of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const refused = await upload(owner, '/api/t/acme/files/forged.txt', 'a=1', contentType)
      expect([refused.status, refused.body.error.code], contentType).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE'])
    }
    expect((await owner.get('/api/t/acme/files/forged.txt')).status).toBe(404)
    expect((await upload(readWrite, '/api/tenant/files/plain.txt', 'plain', 'text/plain')).status).toBe(200)
  })

  it("another tenant's caller gets 404 and its own, separate files", async () => {
    expect((await stranger.get('/api/t/acme/files/docs/hello.txt')).status).toBe(404)
    expect((await stranger.get('/api/t/acme/files')).status).toBe(404)
    expect((await upload(stranger, '/api/t/acme/files/docs/hello.txt', 'evil')).status).toBe(404)
    expect((await stranger.delete('/api/t/acme/files/docs/hello.txt')).status).toBe(404)
    expect((await upload(stranger, '/api/t/globex/files/docs/hello.txt', 'globex')).status).toBe(200)
    expect((await stranger.get('/api/t/globex/files/docs/hello.txt')).text).toBe('globex')
    expect((await owner.get('/api/t/acme/files/docs/hello.txt')).text).toBe('hello world')
    expect((await stranger.get('/api/t/globex/files')).body.items.map((f: { path: string }) => f.path)).toEqual(['docs/hello.txt'])
  })
})

describe('parseRange', () => {
  it('reads one byte range and ignores what it does not understand', () => {
    expect(parseRange('bytes=0-0', 5)).toEqual({ start: 0, end: 0 })
    expect(parseRange('bytes=2-99', 5)).toEqual({ start: 2, end: 4 })
    expect(parseRange('bytes=-99', 5)).toEqual({ start: 0, end: 4 })
    expect(parseRange('bytes=5-', 5)).toBe('unsatisfiable')
    expect(parseRange('bytes=-0', 5)).toBe('unsatisfiable')
    expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable')
    for (const ignored of [undefined, 'items=0-1', 'bytes=3-1', 'bytes=-', 'bytes=a-b', 'bytes=0-1,2-3']) expect(parseRange(ignored, 5)).toBeUndefined()
  })
})
