import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry } from '../../index.js'
import { tempDir } from '../../testing/index.js'
import { checkFilePath, checkFilePrefix } from './file-path.js'

// Issue 12: `tenantry.files` conformance on the local file-system driver (the one shipped):
// hostile paths refused, symlinks never followed, the same path in two tenants apart, the quota
// and size limit keeping nothing of a refused upload, atomic replace, and a purge leaving nothing.

const home = tempDir()
const outside = tempDir('tenantry-outside-')
let tenantry: Tenantry
let filesDir: string
const ids: Record<string, string> = {}

beforeAll(async () => {
  tenantry = await createTenantry({ home: home.path, quotas: { fileBytes: 1000 }, services: { files: { maxFileBytes: 600 } } })
  filesDir = tenantry.config.services.files.directory
  for (const slug of ['acme', 'beta', 'gone']) ids[slug] = (await tenantry.createTenant({ slug })).id
  writeFileSync(join(outside.path, 'secret.txt'), 'outside the tenant')
})
afterAll(async () => {
  await tenantry?.close()
  home.cleanup()
  outside.cleanup()
})

const as = <T>(slug: string, fn: () => Promise<T>) => tenantry.withTenant(slug, fn)
const files = () => tenantry.files
const text = async (slug: string, path: string) => (await as(slug, () => files().read(path)))?.toString('utf8')

/** Paths a hostile or careless caller might send, each with the rule it must break. */
const HOSTILE: Array<[string, string]> = [
  ['../x', '..'],
  ['a/../../x', '..'],
  ['..', '..'],
  ['./x', '.'],
  ['/etc/passwd', 'leading /'],
  ['a//b', 'empty segment'],
  ['a/', 'trailing /'],
  ['', 'empty'],
  ['a\\..\\b', 'backslash'],
  ['C:\\x', 'backslash'],
  ['a\u0000b', 'NUL'],
  ['a\nb', 'control'],
  ['a\u007fb', 'control'],
  ['a\u0085b', 'C1 control'],
  ['invoice\u202Efdp.exe', 'bidi override'],
  ['a\u2066b\u2069', 'bidi isolate'],
  ['a\u200Fb', 'RLM'],
  ['a\u2028b', 'line separator'],
  ['x'.repeat(256), 'segment too long'],
  [`${'a/'.repeat(512)}b`, 'path too long'],
]

describe('file paths', () => {
  it('refuses every hostile path with INVALID_PATH, naming the rule', () => {
    for (const [path, why] of HOSTILE) {
      expect(() => checkFilePath(path), why).toThrow(expect.objectContaining({ code: 'INVALID_PATH' }))
    }
    expect(() => checkFilePath(7)).toThrow(expect.objectContaining({ code: 'INVALID_PATH' }))
  })

  it('keeps ordinary names, and normalizes to NFC so one name is one file', () => {
    for (const path of ['cv.pdf', 'a/b/c.txt', '.hidden', 'a..b', '...', 'ключ/🙂 space.txt', "it's (1).md"]) expect(checkFilePath(path)).toBe(path)
    expect(checkFilePath('caf\u0065\u0301.txt')).toBe('caf\u00e9.txt')
    expect(checkFilePrefix('docs/')).toBe('docs/')
    expect(checkFilePrefix('')).toBe('')
    expect(() => checkFilePrefix('../')).toThrow(expect.objectContaining({ code: 'INVALID_PATH' }))
    expect(() => checkFilePrefix('/')).toThrow(expect.objectContaining({ code: 'INVALID_PATH' }))
  })
})

describe('tenantry.files on the local file system', () => {
  it('outside withTenant every call is NO_TENANT', async () => {
    for (const call of [() => files().put('a', 'x'), () => files().get('a'), () => files().stat('a'), () => files().list(), () => files().delete('a'), () => files().usage()]) {
      await expect(call()).rejects.toMatchObject({ code: 'NO_TENANT' })
    }
  })

  it('put and get as streams (Node and web), stat, content type, ranges', async () => {
    await as('acme', async () => {
      const stat = await files().put('docs/cv.txt', Readable.from([Buffer.from('hello '), Buffer.from('world')]), { contentType: 'text/plain; charset=utf-8' })
      expect(stat).toMatchObject({ path: 'docs/cv.txt', size: 11, contentType: 'text/plain; charset=utf-8' })
      expect(await files().stat('docs/cv.txt')).toMatchObject({ size: 11, contentType: 'text/plain; charset=utf-8' })
      const web = new Blob(['from a web stream']).stream()
      await files().put('docs/web.bin', web)
      expect((await files().read('docs/web.bin'))!.toString()).toBe('from a web stream')
      expect((await files().stat('docs/web.bin'))!.contentType).toBe('application/octet-stream')
      const part = await files().get('docs/cv.txt', { range: { start: 6, end: 10 } })
      const chunks: Buffer[] = []
      for await (const chunk of part!.body) chunks.push(chunk as Buffer)
      expect(Buffer.concat(chunks).toString()).toBe('world')
      expect(await files().get('docs/missing.txt')).toBeUndefined()
      expect(await files().stat('docs')).toBeUndefined() // a folder is not a file
    })
    expect(await text('acme', 'docs/cv.txt')).toBe('hello world')
  })

  it('the same path in two tenants names two files', async () => {
    await as('acme', () => files().put('shared/name.txt', 'acme'))
    await as('beta', () => files().put('shared/name.txt', 'beta'))
    expect(await text('acme', 'shared/name.txt')).toBe('acme')
    expect(await text('beta', 'shared/name.txt')).toBe('beta')
    await as('beta', () => files().delete('shared/name.txt'))
    expect(await text('acme', 'shared/name.txt')).toBe('acme')
    expect(await text('beta', 'shared/name.txt')).toBeUndefined()
    expect((await as('beta', () => files().list())).items.map((f) => f.path)).not.toContain('docs/cv.txt')
  })

  it('refuses hostile paths on every call and writes nothing', async () => {
    await as('beta', async () => {
      for (const [path, why] of HOSTILE) {
        for (const call of [() => files().put(path, 'x'), () => files().get(path), () => files().delete(path), () => files().stat(path)]) {
          await expect(call(), why).rejects.toMatchObject({ code: 'INVALID_PATH' })
        }
      }
      await expect(files().list({ prefix: '../' })).rejects.toMatchObject({ code: 'INVALID_PATH' })
    })
    expect(readdirSync(outside.path)).toEqual(['secret.txt'])
    expect(existsSync(join(filesDir, 'x'))).toBe(false)
    expect(existsSync(join(filesDir, ids.beta!, 'x'))).toBe(false)
  })

  it('never follows a symlink, in a folder on the way or as the file itself', async () => {
    const data = join(filesDir, ids.acme!, 'data')
    symlinkSync(outside.path, join(data, 'escape'))
    symlinkSync(join(outside.path, 'secret.txt'), join(data, 'link.txt'))
    await as('acme', async () => {
      await expect(files().get('escape/secret.txt')).rejects.toMatchObject({ code: 'INVALID_PATH' })
      await expect(files().put('escape/new.txt', 'x')).rejects.toMatchObject({ code: 'INVALID_PATH' })
      await expect(files().get('link.txt')).rejects.toMatchObject({ code: 'INVALID_PATH' })
      expect((await files().list()).items.map((f) => f.path)).not.toContain('link.txt')
      await expect(files().list({ prefix: 'escape/' })).rejects.toMatchObject({ code: 'INVALID_PATH' })
      // Writing over a link replaces the link, never the file it points at.
      await files().put('link.txt', 'replaced')
    })
    expect(readFileSync(join(outside.path, 'secret.txt'), 'utf8')).toBe('outside the tenant')
    expect(readdirSync(outside.path)).toEqual(['secret.txt'])
    expect(await text('acme', 'link.txt')).toBe('replaced')
  })

  it('lists by prefix in path order, a page at a time', async () => {
    await as('beta', async () => {
      for (const name of ['p/c', 'p/a', 'p/b/d', 'p/b/e', 'q/a', 'pz']) await files().put(name, name)
      const first = await files().list({ prefix: 'p/', limit: 2 })
      expect(first.items.map((f) => f.path)).toEqual(['p/a', 'p/b/d'])
      const second = await files().list({ prefix: 'p/', limit: 2, cursor: first.nextCursor! })
      expect(second.items.map((f) => f.path)).toEqual(['p/b/e', 'p/c'])
      expect(second.nextCursor).toBeUndefined()
      expect((await files().list({ prefix: 'p' })).items.map((f) => f.path)).toEqual(['p/a', 'p/b/d', 'p/b/e', 'p/c', 'pz'])
      expect((await files().list({ prefix: 'nothing/' })).items).toEqual([])
      for (const limit of [0, 1001, 1.5]) await expect(files().list({ limit })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
      await expect(files().put('p/a/under-a-file', 'x')).rejects.toMatchObject({ code: 'PATH_CONFLICT' })
      await expect(files().put('p/b', 'x')).rejects.toMatchObject({ code: 'PATH_CONFLICT' })
      await expect(files().put('ok', 'x', { contentType: 'text/html\r\nX-Evil: 1' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    })
  })

  it('a refused upload (size limit, quota) keeps nothing; a replace counts the new size only', async () => {
    await as('gone', async () => {
      await expect(files().put('big', Buffer.alloc(601))).rejects.toMatchObject({ code: 'FILE_TOO_LARGE' })
      await files().put('a', Buffer.alloc(500))
      await files().put('b', Buffer.alloc(400))
      await expect(files().put('c', Readable.from([Buffer.alloc(60), Buffer.alloc(60)]))).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' })
      expect(await files().stat('c')).toBeUndefined()
      // Replacing `a` frees its 500 bytes first.
      await files().put('a', Buffer.alloc(550))
      expect(await files().usage()).toEqual({ bytes: 950, quotaBytes: 1000 })
      // A refused replace leaves the old file as it was.
      await expect(files().put('b', Buffer.alloc(460))).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' })
      expect((await files().stat('b'))!.size).toBe(400)
      expect(await files().delete('b')).toBe(true)
      expect(await files().delete('b')).toBe(false)
      expect(await files().usage()).toEqual({ bytes: 550, quotaBytes: 1000 })
    })
    expect(readdirSync(join(filesDir, ids.gone!, 'tmp'))).toEqual([])
  })

  it("takes the tenant's own quota from tenantry.quotas (fileBytes), over the config's", async () => {
    await tenantry.quotas.set('beta', { fileBytes: 100 })
    try {
      await as('beta', async () => {
        await expect(files().put('quota/over.bin', Buffer.alloc(101))).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED', details: { quota: 'fileBytes', limit: 100 } })
        expect(await files().stat('quota/over.bin')).toBeUndefined()
        expect((await files().usage()).quotaBytes).toBe(100)
      })
      await tenantry.quotas.set('beta', { fileBytes: null })
      await as('beta', async () => {
        await files().put('quota/over.bin', Buffer.alloc(1001 - 600))
        expect((await files().usage()).quotaBytes).toBeNull()
        expect(await files().delete('quota/over.bin')).toBe(true)
      })
    } finally {
      await tenantry.quotas.set('beta', { fileBytes: 'default' })
    }
  })

  it('a failing body stream keeps nothing and leaves the old file', async () => {
    await as('beta', async () => {
      await files().put('stream.txt', 'old')
      const failing = new Readable({
        read() {
          this.push(Buffer.from('new part'))
          this.destroy(new Error('client went away'))
        },
      })
      await expect(files().put('stream.txt', failing)).rejects.toThrow('client went away')
    })
    expect(await text('beta', 'stream.txt')).toBe('old')
    expect(readdirSync(join(filesDir, ids.beta!, 'tmp'))).toEqual([])
  })

  it('purging a tenant removes all its files, the other tenants keep theirs', async () => {
    const goneDir = join(filesDir, ids.gone!)
    expect(existsSync(goneDir)).toBe(true)
    mkdirSync(join(goneDir, 'data', 'deep', 'er'), { recursive: true })
    await tenantry.deleteTenant('gone', { purge: true })
    expect(existsSync(goneDir)).toBe(false)
    expect(readdirSync(filesDir).sort()).toEqual([ids.acme, ids.beta].sort())
    const entry = (await tenantry.catalog.auditLog(ids.gone!)).find((e) => e.action === 'tenant.services.purged')
    expect(JSON.stringify(entry)).toContain('"files":{"files":1,"bytes":550}')
    // The slug freed and taken again starts with no files.
    await tenantry.createTenant({ slug: 'gone' })
    expect((await as('gone', () => files().list())).items).toEqual([])
    expect(await text('acme', 'docs/cv.txt')).toBe('hello world')
  })
})
