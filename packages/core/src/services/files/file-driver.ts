import type { Readable } from 'node:stream'

/**
 * What a file store does for `TenantFiles`, shaped so that an S3-compatible store can
 * implement it as well as the local file system (`LocalFileDriver`, the one driver shipped:
 * an S3 driver is left until it can be tested against a real S3-compatible server). Every
 * call names the tenant by id and takes a path already checked by `checkFilePath` (NFC,
 * relative, no `..`, no controls); the driver alone decides where a tenant's files live, and
 * must make sure no path of one tenant reaches another tenant's files or its own bookkeeping.
 *
 * The S3 mapping: a tenant's files are the keys under `<prefix><tenantId>/`; `put` is one
 * (multipart) PutObject, atomic as S3 writes are; `get` a GetObject with `Range`; `list` a
 * ListObjectsV2 with `StartAfter` and `MaxKeys`; `usage` a running total kept beside the
 * objects (S3 has no cheap "size of prefix"); `purge` a paged DeleteObjects over the prefix.
 */
export interface FileDriver {
  readonly name: string
  /**
   * Stores `body` at `path`, replacing any file there, atomically: until it returns, readers
   * see the old file (or none); a failed or refused write keeps nothing. Refuses with
   * `FILE_TOO_LARGE` past `maxBytes`, and `QUOTA_EXCEEDED` when the tenant's files would
   * then take more than `quotaBytes` (the file it replaces no longer counted).
   */
  put(tenantId: string, path: string, body: Readable, options: FilePutLimits & { contentType: string }): Promise<FileStat>
  /** The file's bytes `start`..`end` (inclusive; the whole file by default) and its stat, or `undefined` if there is no file. */
  get(tenantId: string, path: string, range?: { start: number; end: number }): Promise<{ stat: FileStat; body: Readable } | undefined>
  stat(tenantId: string, path: string): Promise<FileStat | undefined>
  /** Files whose path starts with `prefix`, in path order (UTF-16 code units), after `after`, at most `limit`. */
  list(tenantId: string, options: { prefix: string; after?: string; limit: number }): Promise<FileStat[]>
  /** Removes the file; whether it was there. */
  delete(tenantId: string, path: string): Promise<boolean>
  /** Bytes the tenant's files take (their sizes). */
  usage(tenantId: string): Promise<number>
  /** Removes everything the tenant has in the store; idempotent. */
  purge(tenantId: string): Promise<{ files: number; bytes: number }>
  close(): Promise<void>
}

export interface FilePutLimits {
  /** Largest file, in bytes. */
  maxBytes: number
  /** The tenant's storage quota for files, in bytes; `null`: unlimited. */
  quotaBytes: number | null
}

/** One stored file. */
export interface FileStat {
  path: string
  size: number
  /** As given when it was stored. */
  contentType: string
  /** When it was last stored (ISO 8601). */
  modifiedAt: string
}
