import { describe, expect, it } from 'vitest'
import { resolveConfig } from '../config.js'
import { resolveServicesConfig } from './services-config.js'

describe('services config', () => {
  it('defaults to the memory cache, no state table, files under home and no jobs', () => {
    expect(resolveServicesConfig(undefined, { home: '/srv/app/.tenantry', resolvePath: (p) => p })).toEqual({
      cache: { driver: 'memory', prefix: 'tenantry:', sweepBatch: 200, sweepIntervalMs: 1000, maxValueBytes: 1024 * 1024, maxCachedTenants: 10_000 },
      state: false,
      files: { driver: 'local', directory: '/srv/app/.tenantry/files', maxFileBytes: 100 * 1024 ** 2 },
    })
    expect(resolveConfig({ services: { files: { directory: 'uploads' }, jobs: { url: 'redis://q:6379' } } }, { root: '/srv/app' }).services).toMatchObject({
      files: { directory: '/srv/app/uploads' },
      jobs: { url: 'redis://q:6379', prefix: 'tenantry', suspendedDelayMs: 30_000, lockMs: 60_000 },
    })
    expect(resolveConfig({ services: { cache: { driver: 'redis', url: 'redis://cache:6379/2', prefix: 'app:' }, state: true } }).services).toMatchObject({
      cache: { driver: 'redis', url: 'redis://cache:6379/2', prefix: 'app:' },
      state: true,
    })
  })

  it('a resolved config can be given again', () => {
    const once = resolveServicesConfig({ cache: { driver: 'redis', url: 'redis://127.0.0.1:6379', sweepIntervalMs: 50 } })
    expect(resolveServicesConfig(once)).toEqual(once)
  })

  it('refuses what it does not know, naming the field', () => {
    for (const [services, named] of [
      [{ cache: { driver: 'memcached' } }, 'services.cache.driver'],
      [{ cache: { driver: 'redis' } }, 'services.cache.url'],
      [{ cache: { driver: 'redis', url: 'http://x' } }, 'services.cache.url'],
      [{ cache: { driver: 'redis', url: 'redis://x', prefix: 'a b' } }, 'services.cache.prefix'],
      [{ cache: { driver: 'memory', sweepIntervalMs: 0 } }, 'services.cache.sweepIntervalMs'],
      [{ cache: { driver: 'memory', ttl: 5 } }, '"ttl"'],
      [{ state: 'yes' }, 'services.state'],
      [{ files: { driver: 's3' } }, 'services.files.driver'],
      [{ files: { quotaBytes: 1000 } }, 'services.files: unknown field "quotaBytes"'],
      [{ files: { maxFileBytes: 0 } }, 'services.files.maxFileBytes'],
      [{ jobs: {} }, 'services.jobs.url'],
      [{ jobs: { url: 'redis://x', prefix: 'a:b' } }, 'services.jobs.prefix'],
      [{ queues: {} }, '"queues"'],
    ] as const) {
      expect(() => resolveConfig({ services: services as never }), JSON.stringify(services)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining(named) }))
    }
  })
})
