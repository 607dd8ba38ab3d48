import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely'
import { currentScope } from '../context.js'
import { NoTenantError, TenantryError } from '../errors.js'

/**
 * Refuses every query through a tenant's handle unless that tenant is the one in context.
 * A handle kept past its `withTenant` call, or passed into another tenant's call, fails
 * closed instead of reading the wrong tenant's data.
 */
export class TenantGuardPlugin implements KyselyPlugin {
  readonly #tenantId: string

  constructor(tenantId: string) {
    this.#tenantId = tenantId
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const scope = currentScope()
    if (!scope) throw new NoTenantError()
    if (scope.tenant.id !== this.#tenantId) {
      throw new TenantryError('TENANT_MISMATCH', `A handle for another tenant was used inside ${scope.tenant.slug}'s context`)
    }
    return args.node
  }

  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result)
  }
}
