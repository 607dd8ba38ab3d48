import type {
  AdminTenant,
  AdminTenantDetail,
  CreatedIntegrationToken,
  DataSource,
  DataSourceTest,
  ErasedTenant,
  RestoredTenant,
  TenantBackup,
  FanOutReport,
  IntegrationToken,
  MigrationRun,
  MigrationStatus,
  ReadOnlyAccessGrant,
  ReadOnlyAccessOffer,
  TenantLimits,
  TenantQuotas,
  TenantUsage,
} from '@tenantry/client'
import { describe, expectTypeOf, it } from 'vitest'
import type { z } from 'zod'
import {
  dataSourceTestResult,
  dataSourceView,
  erasedView,
  backupView,
  restoredView,
  fanOutReport,
  limitsView,
  migrationRun,
  migrationStatus,
  quotasView,
  tenantView,
  tenantWithAuditLog,
  usageView,
} from './admin/schemas.js'
import { readOnlyAccessGrant, readOnlyAccessOffer } from './read-only-access/schemas.js'
import { createdToken, tokenRecord } from './tokens/schemas.js'

/**
 * The client's types for the server's answers are written out in `@tenantry/client` (it cannot
 * import the server); these checks make them the same types as what the routes' zod schemas
 * answer, so a change on either side that the other did not follow fails `npm test`'s type check.
 */
describe('the client types the answers the routes give', () => {
  it('integration tokens and read-only access', () => {
    expectTypeOf<z.infer<typeof tokenRecord>>().toEqualTypeOf<IntegrationToken>()
    expectTypeOf<z.infer<typeof createdToken>>().toEqualTypeOf<CreatedIntegrationToken>()
    expectTypeOf<z.infer<typeof readOnlyAccessOffer>>().toEqualTypeOf<ReadOnlyAccessOffer>()
    expectTypeOf<z.infer<typeof readOnlyAccessGrant>>().toEqualTypeOf<ReadOnlyAccessGrant>()
  })

  it('the admin API', () => {
    expectTypeOf<z.infer<typeof tenantView>>().toEqualTypeOf<AdminTenant>()
    expectTypeOf<z.infer<typeof tenantWithAuditLog>>().toEqualTypeOf<AdminTenantDetail>()
    expectTypeOf<z.infer<typeof erasedView>>().toEqualTypeOf<ErasedTenant>()
    expectTypeOf<z.infer<typeof backupView>>().toEqualTypeOf<TenantBackup>()
    expectTypeOf<z.infer<typeof restoredView>>().toEqualTypeOf<RestoredTenant>()
    expectTypeOf<z.infer<typeof quotasView>>().toEqualTypeOf<TenantQuotas>()
    expectTypeOf<z.infer<typeof limitsView>>().toEqualTypeOf<TenantLimits>()
    expectTypeOf<z.infer<typeof usageView>>().toEqualTypeOf<TenantUsage>()
    expectTypeOf<z.infer<typeof migrationStatus>>().toEqualTypeOf<MigrationStatus>()
    expectTypeOf<z.infer<typeof fanOutReport>>().toEqualTypeOf<FanOutReport>()
    expectTypeOf<z.infer<typeof migrationRun>>().toEqualTypeOf<{ run: MigrationRun | null }>()
    expectTypeOf<z.infer<typeof dataSourceView>>().toEqualTypeOf<DataSource>()
    expectTypeOf<z.infer<typeof dataSourceTestResult>>().toEqualTypeOf<DataSourceTest>()
  })
})
