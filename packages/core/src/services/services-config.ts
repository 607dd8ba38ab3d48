import { join, resolve } from 'node:path'
import { z } from 'zod'
import { TenantryError } from '../errors.js'

/**
 * `services` in `tenantry.config.ts`: how the tenant-scoped services are backed. Only the cache
 * has a choice of store (secrets live in the catalog); state is switched on, as it adds a table
 * to every tenant database.
 *
 * @example
 * services: { cache: { driver: 'redis', url: process.env.REDIS_URL } }
 */
export interface ServicesConfig {
  cache?: CacheConfig
  /**
   * `tenantry.state`: make `tenantry_state` in every tenant database (a derived migration step,
   * applied by provisioning and `tenantry migrate`). Off by default: a tenant database then holds
   * only what the app's migrations make.
   * @default false
   */
  state?: boolean
  /** `tenantry.files`: where tenants' files are kept, and how much each may store. */
  files?: FilesConfig
  /** `tenantry.jobs`: the Redis BullMQ keeps its queues in. Without it, `tenantry.jobs` throws `INVALID_CONFIG` when used. */
  jobs?: JobsConfig
}

/** `services.files`. Only the local file system ships; an S3-compatible store implements `FileDriver`. */
export interface FilesConfig {
  driver?: 'local'
  /** Relative to the config file. @default `${home}/files` */
  directory?: string
  /** Largest single file, in bytes. @default 100 MiB */
  maxFileBytes?: number
}

/** `services.jobs`. */
export interface JobsConfig {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`. */
  url: string
  /** Every BullMQ key starts with it (`<prefix>:t-<tenantId>:…`). @default 'tenantry' */
  prefix?: string
  /** How long a job of a suspended tenant waits before it is looked at again. @default 30000 */
  suspendedDelayMs?: number
  /** How long a running job's lock lasts (renewed while it runs); a worker that dies frees its job after it. @default 60000 */
  lockMs?: number
}

export interface ResolvedFilesConfig {
  driver: 'local'
  /** Absolute. */
  directory: string
  maxFileBytes: number
}

export interface ResolvedJobsConfig {
  url: string
  prefix: string
  suspendedDelayMs: number
  lockMs: number
}

/** The cache's backing store: this process's memory (one process, development), or Redis (shared by every process). */
export type CacheConfig =
  | ({ driver: 'memory' } & CacheCommonConfig)
  | ({
      driver: 'redis'
      /** `redis://[user:password@]host:port[/db]` or `rediss://…`. */
      url: string
    } & CacheCommonConfig)

export interface CacheCommonConfig {
  /** Redis: every key Tenantry writes starts with it. @default 'tenantry:' */
  prefix?: string
  /** Redis: keys the background removal of a flushed tenant's old entries looks at per tick (SCAN COUNT). @default 200 */
  sweepBatch?: number
  /** How often the background removal runs (memory: expired entries; Redis: flushed generations). @default 1000 */
  sweepIntervalMs?: number
  /** Largest value (its JSON) a tenant may store under one key. @default 1048576 */
  maxValueBytes?: number
  /** Redis: tenants whose current generation each process keeps (least recently used dropped first). @default 10000 */
  maxCachedTenants?: number
}

/** The cache config with its defaults: a `CacheConfig` itself, so a resolved config can be given again. */
export type ResolvedCacheConfig = ({ driver: 'memory'; url?: undefined } | { driver: 'redis'; url: string }) & {
  prefix: string
  sweepBatch: number
  sweepIntervalMs: number
  maxValueBytes: number
  maxCachedTenants: number
}

export interface ResolvedServicesConfig {
  cache: ResolvedCacheConfig
  state: boolean
  files: ResolvedFilesConfig
  jobs?: ResolvedJobsConfig
}

const common = {
  prefix: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.:-]+$/, 'expected letters, digits and _ . : -').optional(),
  sweepBatch: z.number().int().min(1).max(100_000).optional(),
  sweepIntervalMs: z.number().int().positive().optional(),
  maxValueBytes: z.number().int().positive().max(512 * 1024 * 1024).optional(),
  maxCachedTenants: z.number().int().min(1).max(10_000_000).optional(),
}
const cacheSchema = z.discriminatedUnion('driver', [
  z.strictObject({ driver: z.literal('memory'), ...common }),
  z.strictObject({
    driver: z.literal('redis'),
    url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL'),
    ...common,
  }),
])
const filesSchema = z.strictObject({
  driver: z.literal('local').optional(),
  directory: z.string().min(1).optional(),
  maxFileBytes: z.number().int().positive().optional(),
})
const jobsSchema = z.strictObject({
  url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL'),
  prefix: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.-]+$/, 'expected letters, digits and _ . -').optional(),
  suspendedDelayMs: z.number().int().positive().optional(),
  lockMs: z.number().int().min(1_000).optional(),
})
const servicesSchema = z.strictObject({ cache: cacheSchema.optional(), state: z.boolean().optional(), files: filesSchema.optional(), jobs: jobsSchema.optional() })

/** Checks `services` (unknown fields refused by name) and applies the defaults. Throws `INVALID_CONFIG`. */
export function resolveServicesConfig(
  input: unknown,
  paths: { home: string; resolvePath: (path: string) => string } = { home: resolve('.tenantry'), resolvePath: (path) => resolve(path) },
): ResolvedServicesConfig {
  const parsed = servicesSchema.safeParse(input ?? {})
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => {
      const where = ['services', ...issue.path.map(String)].join('.')
      if (issue.code === 'unrecognized_keys') return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
      return `${where}: ${issue.message}`
    })
    throw new TenantryError('INVALID_CONFIG', issues.join('; '))
  }
  const cache = parsed.data.cache ?? { driver: 'memory' as const }
  return {
    cache: {
      ...(cache.driver === 'redis' ? { driver: 'redis' as const, url: cache.url } : { driver: 'memory' as const }),
      prefix: cache.prefix ?? 'tenantry:',
      sweepBatch: cache.sweepBatch ?? 200,
      sweepIntervalMs: cache.sweepIntervalMs ?? 1_000,
      maxValueBytes: cache.maxValueBytes ?? 1024 * 1024,
      maxCachedTenants: cache.maxCachedTenants ?? 10_000,
    },
    state: parsed.data.state ?? false,
    files: {
      driver: 'local',
      directory: parsed.data.files?.directory === undefined ? join(paths.home, 'files') : paths.resolvePath(parsed.data.files.directory),
      maxFileBytes: parsed.data.files?.maxFileBytes ?? 100 * 1024 ** 2,
    },
    ...(parsed.data.jobs ? {
          jobs: {
            url: parsed.data.jobs.url,
            prefix: parsed.data.jobs.prefix ?? 'tenantry',
            suspendedDelayMs: parsed.data.jobs.suspendedDelayMs ?? 30_000,
            lockMs: parsed.data.jobs.lockMs ?? 60_000,
          },
        } : {}),
  }
}
