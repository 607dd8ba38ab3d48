import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry } from '../tenantry.js'
import { tempDir } from '../testing/services.js'
import { planNamesOf } from './tenant-limits.js'

const dir = tempDir()
const config = { home: join(dir.path, 'home'), server: { limits: { plans: { pro: { tenant: 10 } } } } }
let tenantry: Tenantry
let other: Tenantry
beforeAll(async () => {
  tenantry = await createTenantry(config)
  other = await createTenantry(config)
  await tenantry.tenants.create({ slug: 'acme' })
})
afterAll(async () => {
  await tenantry?.close()
  await other?.close()
  dir.cleanup()
})

describe('tenant limits', () => {
  it('knows the config’s plan names, default included', () => {
    expect(planNamesOf(undefined)).toEqual(['default'])
    expect(planNamesOf({ limits: { plans: { default: {}, pro: {} } } })).toEqual(['default', 'pro'])
    expect(tenantry.limits.plans).toEqual(['default', 'pro'])
  })

  it('sets, reads and resets a tenant’s own limits, audited, and refuses bad ones changing nothing', async () => {
    const view = await tenantry.limits.set('acme', { plan: 'pro', sqlStatementTimeoutMs: 5000 }, { actor: 'test' })
    expect(view.overrides).toEqual({ plan: 'pro', sqlStatementTimeoutMs: 5000 })
    expect((await tenantry.limits.set('acme', { sqlStatementTimeoutMs: 'default', sqlMaxStatements: 2 })).overrides).toEqual({ plan: 'pro', sqlMaxStatements: 2 })
    // A plan named `default` is that plan; null follows the config again.
    expect((await tenantry.limits.set('acme', { plan: 'default' })).overrides).toEqual({ plan: 'default', sqlMaxStatements: 2 })
    expect((await tenantry.limits.set('acme', { plan: null })).overrides).toEqual({ sqlMaxStatements: 2 })
    await tenantry.limits.set('acme', { plan: 'pro' })
    await expect(tenantry.limits.set('acme', { plan: 'platinum' })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringMatching(/Unknown plan "platinum": use default, pro/) })
    await expect(tenantry.limits.set('acme', { sqlMaxStreams: 0 })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(tenantry.limits.set('acme', { dataApiStatementTimeoutMs: 1.5 })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(tenantry.limits.set('acme', { rows: 3 } as never)).rejects.toThrow(/Unknown limit "rows"/)
    await expect(tenantry.limits.get('nobody')).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
    expect((await tenantry.limits.get('acme')).overrides).toEqual({ plan: 'pro', sqlMaxStatements: 2 })
    // Limits and quotas share the tenant's settings document: neither overwrites the other.
    await tenantry.quotas.set('acme', { tokens: 7 })
    expect((await tenantry.limits.get('acme')).overrides).toEqual({ plan: 'pro', sqlMaxStatements: 2 })
    expect((await tenantry.quotas.get('acme')).overrides).toEqual({ tokens: 7 })
    const log = await tenantry.catalog.auditLog((await tenantry.catalog.findTenantBySlug('acme'))!.id)
    expect(log.filter((e) => e.action === 'limits.set')).toHaveLength(5)
    expect((await tenantry.limits.set('acme', {}, { replace: true })).overrides).toEqual({})
  })

  it('a change applies at once in this process and within a few seconds in another', async () => {
    const id = (await tenantry.catalog.findTenantBySlug('acme'))!.id
    expect(await other.limits.of(id)).toEqual({})
    await tenantry.limits.set('acme', { sqlMaxStreams: 3 })
    expect(await tenantry.limits.of(id)).toEqual({ sqlMaxStreams: 3 })
    const deadline = Date.now() + 10_000
    while ((await other.limits.of(id)).sqlMaxStreams !== 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250))
    expect(await other.limits.of(id)).toEqual({ sqlMaxStreams: 3 })
  })
})
