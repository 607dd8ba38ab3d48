import { Readable } from 'node:stream'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { TenantryError } from '../../errors.js'
import { scopeTenant, type TenantService } from '../scope.js'
import type { ResolvedFilesConfig } from '../services-config.js'
import type { FileDriver, FileStat } from './file-driver.js'
import { checkFilePath, checkFilePrefix } from './file-path.js'
import { LocalFileDriver } from './local-driver.js'

/** What `put` stores: a Node stream, a web stream (e.g. `request.body` of `fetch`), bytes or text. */
export type FileBody = Readable | WebReadableStream<Uint8Array> | Uint8Array | string

export interface FilePutOptions {
  /** Sent back with the file (`Content-Type` of a download). @default 'application/octet-stream' */
  contentType?: string
  /** A lower size limit than the config's `maxFileBytes` for this upload. */
  maxBytes?: number
}

export interface FileListOptions {
  /** Only paths starting with it; end it with `/` for one folder's files (all the way down). @default '' (all) */
  prefix?: string
  /** The `nextCursor` of the previous page. */
  cursor?: string
  /** @default 100, at most 1000 */
  limit?: number
}

export interface FileListPage {
  items: FileStat[]
  /** Pass as `cursor` for the next page; absent on the last page. */
  nextCursor?: string
}

/** Longest content type kept. */
const CONTENT_TYPE_MAX = 255
const CONTENT_TYPE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(?:\s*;\s*[A-Za-z0-9!#$&^_.+-]+=(?:[A-Za-z0-9!#$&^_.+-]+|"[^"\\\r\n]*"))*$/

/**
 * `tenantry.files`: the tenant in context's files (seed 004's per-user folders), in a store
 * chosen by `services.files` (the local file system; an S3-compatible store implements the
 * same `FileDriver`). Every call reads the tenant from the context (`NO_TENANT` outside
 * `withTenant`) and checks the path (`INVALID_PATH`: no `..`, no absolute paths, no controls
 * or bidi tricks, NFC); the driver keeps each tenant's files under its id, so the same path in
 * two tenants names two files. Uploads are streamed, limited in size (`FILE_TOO_LARGE`) and by
 * the tenant's files quota (`QUOTA_EXCEEDED`), and atomic. Purged with the tenant.
 *
 * @example
 * await tenantry.withTenant('acme', async () => {
 *   await tenantry.files.put('cv/2026.pdf', request.body, { contentType: 'application/pdf' })
 *   const file = await tenantry.files.get('cv/2026.pdf') // { stat, body: Readable } | undefined
 * })
 */
export class TenantFiles implements TenantService {
  readonly name = 'files'
  readonly driver: FileDriver
  readonly #config: ResolvedFilesConfig
  readonly #quotaOf: (tenantId: string) => Promise<number | null>

  /**
   * `quotaOf` answers a tenant's files quota in bytes (`null`: unlimited): the `fileBytes` of
   * `tenantry.quotas`, the config's `quotas.fileBytes` unless the tenant has its own.
   */
  constructor(config: ResolvedFilesConfig, options: { driver?: FileDriver; quotaOf: (tenantId: string) => Promise<number | null> }) {
    this.#config = config
    this.#quotaOf = options.quotaOf
    this.driver = options.driver ?? new LocalFileDriver({ directory: config.directory })
  }

  /** The size limit of one upload, as configured. */
  get maxFileBytes(): number {
    return this.#config.maxFileBytes
  }

  /** Stores `body` at `path` (replacing the file there, atomically) and returns its stat. */
  async put(path: string, body: FileBody, options: FilePutOptions = {}): Promise<FileStat> {
    const tenant = scopeTenant('files')
    const checked = checkFilePath(path)
    const contentType = checkContentType(options.contentType)
    if (options.maxBytes !== undefined && (!Number.isSafeInteger(options.maxBytes) || options.maxBytes < 0)) {
      throw new TenantryError('INVALID_OPTION', `maxBytes must be a whole number of bytes, not ${String(options.maxBytes)}`)
    }
    const maxBytes = Math.min(options.maxBytes ?? Number.POSITIVE_INFINITY, this.#config.maxFileBytes)
    return this.driver.put(tenant.id, checked, toReadable(body), { contentType, maxBytes, quotaBytes: await this.#quotaOf(tenant.id) })
  }

  /** The file at `path` as a stream (bytes `start`..`end` inclusive, if given) with its stat, or `undefined`. */
  async get(path: string, options: { range?: { start: number; end: number } } = {}): Promise<{ stat: FileStat; body: Readable } | undefined> {
    const tenant = scopeTenant('files')
    const checked = checkFilePath(path)
    const range = options.range
    if (range && !(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.end >= range.start)) {
      throw new TenantryError('INVALID_OPTION', `A range is two whole numbers, start ≤ end, not ${JSON.stringify(range)}`)
    }
    return this.driver.get(tenant.id, checked, range)
  }

  /** The whole file at `path` as bytes, or `undefined`: for small files. */
  async read(path: string): Promise<Buffer | undefined> {
    const file = await this.get(path)
    if (!file) return undefined
    const chunks: Buffer[] = []
    for await (const chunk of file.body) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  }

  async stat(path: string): Promise<FileStat | undefined> {
    const tenant = scopeTenant('files')
    return this.driver.stat(tenant.id, checkFilePath(path))
  }

  /** The tenant's files under `prefix`, in path order, a page at a time. */
  async list(options: FileListOptions = {}): Promise<FileListPage> {
    const tenant = scopeTenant('files')
    const prefix = checkFilePrefix(options.prefix)
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new TenantryError('INVALID_OPTION', `limit must be a whole number from 1 to 1000, not ${String(limit)}`)
    const after = options.cursor === undefined ? undefined : checkFilePath(options.cursor)
    const items = await this.driver.list(tenant.id, { prefix, limit: limit + 1, ...(after === undefined ? {} : { after }) })
    if (items.length <= limit) return { items }
    const page = items.slice(0, limit)
    return { items: page, nextCursor: page[page.length - 1]!.path }
  }

  /** Removes the file at `path`; whether it was there. */
  async delete(path: string): Promise<boolean> {
    const tenant = scopeTenant('files')
    return this.driver.delete(tenant.id, checkFilePath(path))
  }

  /** Bytes the tenant's files take, and its quota (`null`: unlimited). */
  async usage(): Promise<{ bytes: number; quotaBytes: number | null }> {
    const tenant = scopeTenant('files')
    return { bytes: await this.driver.usage(tenant.id), quotaBytes: await this.#quotaOf(tenant.id) }
  }

  purgeTenant(tenantId: string): Promise<{ files: number; bytes: number }> {
    return this.driver.purge(tenantId)
  }

  close(): Promise<void> {
    return this.driver.close()
  }
}

/** A content type as a header carries it (`type/subtype`, parameters allowed), or `INVALID_OPTION`. */
export function checkContentType(value: string | undefined): string {
  if (value === undefined || value === '') return 'application/octet-stream'
  if (value.length > CONTENT_TYPE_MAX || !CONTENT_TYPE.test(value)) {
    throw new TenantryError('INVALID_OPTION', `Not a content type: ${JSON.stringify(value.slice(0, 80))} (expected type/subtype, e.g. application/pdf)`)
  }
  return value
}

function toReadable(body: FileBody): Readable {
  if (body instanceof Readable) return body
  if (typeof body === 'string' || body instanceof Uint8Array) return Readable.from([Buffer.from(body)])
  if (typeof (body as WebReadableStream<Uint8Array>).getReader === 'function') return Readable.fromWeb(body as WebReadableStream<Uint8Array>)
  throw new TenantryError('INVALID_OPTION', 'A file body is a Readable, a web ReadableStream, bytes or a string')
}
