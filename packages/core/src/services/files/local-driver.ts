import { randomUUID } from 'node:crypto'
import { constants, createWriteStream, type Dirent } from 'node:fs'
import { lstat, mkdir, open, readdir, readFile, realpath, rename, rm, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { TenantryError } from '../../errors.js'
import type { FileDriver, FilePutLimits, FileStat } from './file-driver.js'

/**
 * Tenants' files on the local file system, one folder per tenant **id** under `directory`:
 *
 *     <directory>/<tenantId>/data/<path>   the bytes
 *     <directory>/<tenantId>/meta/<path>   {"contentType": …}, beside them
 *     <directory>/<tenantId>/tmp/<uuid>    uploads in progress
 *
 * Paths arrive checked (`checkFilePath`), so no `..` or absolute path reaches here; what this
 * driver adds is that it never follows a symlink, whoever put one there: every folder on the
 * way is `lstat`ed and refused if it is a link, the file is opened with `O_NOFOLLOW`, and the
 * folder's real path is checked to be under the tenant's folder. A write goes to `tmp/` first
 * (counted against the size limit and quota as it streams), is synced, then renamed into
 * place: readers see the old file or the new one, and a refused upload leaves nothing.
 *
 * The quota counts the sizes under `data/` by walking the tenant's folder, once before an
 * upload and once more when it is committed (under a per-tenant lock, so two uploads of this
 * process cannot both take the last bytes). Processes sharing one folder can overshoot by an
 * upload each: the walk is the truth, and the next upload sees it.
 */
export class LocalFileDriver implements FileDriver {
  readonly name = 'local'
  readonly directory: string
  readonly #locks = new Map<string, Promise<unknown>>()

  constructor(options: { directory: string }) {
    this.directory = options.directory
  }

  async put(tenantId: string, path: string, body: Readable, options: FilePutLimits & { contentType: string }): Promise<FileStat> {
    const root = await this.#tenantRoot(tenantId, true)
    const tmpDir = join(root, 'tmp')
    await mkdir(tmpDir, { recursive: true, mode: 0o700 })
    const allowance = await this.#allowance(tenantId, path, options)
    const tmp = join(tmpDir, randomUUID())
    try {
      let written = 0
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          written += chunk.length
          if (written > options.maxBytes) return done(new TenantryError('FILE_TOO_LARGE', `The file is larger than ${options.maxBytes} bytes`, { details: { maxBytes: options.maxBytes } }))
          if (written > allowance) return done(quotaExceeded(options.quotaBytes!))
          done(null, chunk)
        },
      })
      await pipeline(body, counter, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }))
      const handle = await open(tmp, 'r+')
      await handle.sync().finally(() => handle.close())
      return await this.#locked(tenantId, async () => {
        // Again under the lock: another upload may have been committed meanwhile.
        if (written > (await this.#allowance(tenantId, path, options))) throw quotaExceeded(options.quotaBytes!)
        const [dataDir, name] = await this.#parent(root, 'data', path, true)
        const [metaDir] = await this.#parent(root, 'meta', path, true)
        const metaTmp = `${tmp}.meta`
        await writeFile(metaTmp, JSON.stringify({ contentType: options.contentType }), { flag: 'wx', mode: 0o600 })
        await renameInto(metaTmp, join(metaDir, name), path)
        await renameInto(tmp, join(dataDir, name), path)
        return { path, size: written, contentType: options.contentType, modifiedAt: new Date((await lstat(join(dataDir, name))).mtimeMs).toISOString() }
      })
    } finally {
      await rm(tmp, { force: true })
      await rm(`${tmp}.meta`, { force: true })
    }
  }

  async get(tenantId: string, path: string, range?: { start: number; end: number }): Promise<{ stat: FileStat; body: Readable } | undefined> {
    const opened = await this.#open(tenantId, path)
    if (!opened) return undefined
    const { handle, stat } = opened
    return { stat, body: handle.createReadStream(range ? { start: range.start, end: range.end } : {}) }
  }

  async stat(tenantId: string, path: string): Promise<FileStat | undefined> {
    const opened = await this.#open(tenantId, path)
    await opened?.handle.close()
    return opened?.stat
  }

  async list(tenantId: string, options: { prefix: string; after?: string; limit: number }): Promise<FileStat[]> {
    const root = await this.#tenantRoot(tenantId, false)
    if (!root) return []
    const slash = options.prefix.lastIndexOf('/')
    const base = slash < 0 ? '' : options.prefix.slice(0, slash)
    if (base) {
      const parent = await this.#parent(root, 'data', `${base}/x`, false)
      if (!parent) return []
    }
    const found: Array<{ path: string; size: number; mtimeMs: number }> = []
    await walk(join(root, 'data', ...(base ? base.split('/') : [])), base, (file) => {
      if (file.path.startsWith(options.prefix) && (options.after === undefined || file.path > options.after)) found.push(file)
    })
    found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    const page = found.slice(0, options.limit)
    return Promise.all(
      page.map(async (file) => ({ path: file.path, size: file.size, contentType: await this.#contentType(root, file.path), modifiedAt: new Date(file.mtimeMs).toISOString() })),
    )
  }

  async delete(tenantId: string, path: string): Promise<boolean> {
    const root = await this.#tenantRoot(tenantId, false)
    if (!root) return false
    return this.#locked(tenantId, async () => {
      const data = await this.#parent(root, 'data', path, false)
      if (!data) return false
      const file = join(data[0], data[1])
      const info = await lstat(file).catch(ifMissing(undefined))
      if (!info || info.isDirectory()) return false
      await unlink(file)
      const meta = await this.#parent(root, 'meta', path, false)
      if (meta) await unlink(join(meta[0], meta[1])).catch(ifMissing(undefined))
      return true
    })
  }

  async usage(tenantId: string): Promise<number> {
    const root = await this.#tenantRoot(tenantId, false)
    if (!root) return 0
    let bytes = 0
    await walk(join(root, 'data'), '', (file) => {
      bytes += file.size
    })
    return bytes
  }

  async purge(tenantId: string): Promise<{ files: number; bytes: number }> {
    const root = await this.#tenantRoot(tenantId, false)
    if (!root) return { files: 0, bytes: 0 }
    let files = 0
    let bytes = 0
    await walk(join(root, 'data'), '', (file) => {
      files++
      bytes += file.size
    })
    // `rm` removes a symlink itself, never what it points at.
    await rm(root, { recursive: true, force: true })
    return { files, bytes }
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.#locks.values())
  }

  /** Bytes an upload to `path` may take: the quota less every other file's size. */
  async #allowance(tenantId: string, path: string, options: FilePutLimits): Promise<number> {
    if (options.quotaBytes === null) return Number.POSITIVE_INFINITY
    const [used, existing] = await Promise.all([this.usage(tenantId), this.stat(tenantId, path).catch(() => undefined)])
    return options.quotaBytes - (used - (existing?.size ?? 0))
  }

  /** The tenant's folder (made if `create`), or `undefined` if it is absent. Refuses a link. */
  async #tenantRoot(tenantId: string, create: true): Promise<string>
  async #tenantRoot(tenantId: string, create: false): Promise<string | undefined>
  async #tenantRoot(tenantId: string, create: boolean): Promise<string | undefined> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(tenantId)) throw new TenantryError('INVALID_OPTION', `Not a tenant id: ${JSON.stringify(tenantId)}`)
    const root = join(this.directory, tenantId)
    if (create) await mkdir(root, { recursive: true, mode: 0o700 })
    const info = await lstat(root).catch(ifMissing(undefined))
    if (!info) return undefined
    if (!info.isDirectory()) throw symlinkRefused('the tenant folder')
    return root
  }

  /**
   * The folder holding `path` under `<root>/<tree>` and the file's name, walking every folder
   * on the way with `lstat` (made if `create`; `undefined` if one is missing). A link on the way
   * is `INVALID_PATH`; a file where a folder should be is `PATH_CONFLICT`.
   */
  async #parent(root: string, tree: 'data' | 'meta', path: string, create: true): Promise<[string, string]>
  async #parent(root: string, tree: 'data' | 'meta', path: string, create: boolean): Promise<[string, string] | undefined>
  async #parent(root: string, tree: 'data' | 'meta', path: string, create: boolean): Promise<[string, string] | undefined> {
    const segments = path.split('/')
    const name = segments.pop()!
    let dir = root
    for (const segment of [tree, ...segments]) {
      dir = join(dir, segment)
      let info = await lstat(dir).catch(ifMissing(undefined))
      if (!info) {
        if (!create) return undefined
        await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error
        })
        info = await lstat(dir)
      }
      if (info.isSymbolicLink()) throw symlinkRefused(JSON.stringify(path))
      if (!info.isDirectory()) throw new TenantryError('PATH_CONFLICT', `${JSON.stringify(path)}: a file is where a folder on its way should be`)
    }
    const real = await realpath(dir)
    const realRoot = await realpath(root)
    if (real !== join(realRoot, tree, ...segments) || !real.startsWith(realRoot + sep)) throw symlinkRefused(JSON.stringify(path))
    return [dir, name]
  }

  /** The file opened without following links, and its stat; `undefined` if absent or a folder. */
  async #open(tenantId: string, path: string): Promise<{ handle: FileHandle; stat: FileStat } | undefined> {
    const root = await this.#tenantRoot(tenantId, false)
    if (!root) return undefined
    const parent = await this.#parent(root, 'data', path, false)
    if (!parent) return undefined
    const handle = await openNoFollow(join(parent[0], parent[1]), path)
    if (!handle) return undefined
    const info = await handle.stat()
    if (!info.isFile()) {
      await handle.close()
      return undefined
    }
    const contentType = await this.#contentType(root, path)
    return { handle, stat: { path, size: info.size, contentType, modifiedAt: new Date(info.mtimeMs).toISOString() } }
  }

  async #contentType(root: string, path: string): Promise<string> {
    const parent = await this.#parent(root, 'meta', path, false).catch(() => undefined)
    const handle = parent && (await openNoFollow(join(parent[0], parent[1]), path).catch(() => undefined))
    if (!handle) return 'application/octet-stream'
    try {
      const meta = JSON.parse(await readFile(handle, 'utf8')) as { contentType?: unknown }
      return typeof meta.contentType === 'string' ? meta.contentType : 'application/octet-stream'
    } catch {
      return 'application/octet-stream'
    } finally {
      await handle.close()
    }
  }

  /** Runs `fn` after the tenant's earlier locked calls of this process. */
  #locked<T>(tenantId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(tenantId) ?? Promise.resolve()
    const next = previous.then(fn, fn)
    const settled = next.catch(() => undefined)
    this.#locks.set(tenantId, settled)
    void settled.then(() => {
      if (this.#locks.get(tenantId) === settled) this.#locks.delete(tenantId)
    })
    return next
  }
}

/** Every regular file under `dir` (links skipped, never followed), with its path relative to the tree. */
async function walk(dir: string, relative: string, visit: (file: { path: string; size: number; mtimeMs: number }) => void): Promise<void> {
  const entries: Dirent[] = await readdir(dir, { withFileTypes: true }).catch(ifMissing([] as Dirent[]))
  for (const entry of entries) {
    const path = relative ? `${relative}/${entry.name}` : entry.name
    if (entry.isDirectory()) await walk(join(dir, entry.name), path, visit)
    else if (entry.isFile()) {
      const info = await lstat(join(dir, entry.name)).catch(ifMissing(undefined))
      if (info?.isFile()) visit({ path, size: info.size, mtimeMs: info.mtimeMs })
    }
  }
}

async function openNoFollow(file: string, path: string): Promise<FileHandle | undefined> {
  try {
    return await open(file, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    if (code === 'ELOOP') throw symlinkRefused(JSON.stringify(path))
    throw error
  }
}

async function renameInto(from: string, to: string, path: string): Promise<void> {
  const existing = await lstat(to).catch(ifMissing(undefined))
  if (existing?.isDirectory()) throw new TenantryError('PATH_CONFLICT', `${JSON.stringify(path)} is a folder: a file cannot take its place`)
  // `rename` replaces a link at `to` itself; it never writes through it.
  await rename(from, to)
}

function ifMissing<T>(value: T): (error: NodeJS.ErrnoException) => T {
  return (error) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return value
    throw error
  }
}

function symlinkRefused(what: string): TenantryError {
  return new TenantryError('INVALID_PATH', `${what}: a symbolic link is in the way; file paths never follow links`, { details: { rule: 'no symbolic links' } })
}

function quotaExceeded(quotaBytes: number): TenantryError {
  return new TenantryError('QUOTA_EXCEEDED', `The tenant's files would take more than their quota of ${quotaBytes} bytes`, { details: { quota: 'fileBytes', limit: quotaBytes } })
}
