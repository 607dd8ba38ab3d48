import {
  AliasNode,
  BinaryOperationNode,
  ColumnNode,
  IdentifierNode,
  JoinNode,
  OperationNodeTransformer,
  OperatorNode,
  PrimitiveValueListNode,
  QueryNode,
  ReferenceNode,
  TableNode,
  ValueListNode,
  ValueNode,
  ValuesNode,
  type DeleteQueryNode,
  type InsertQueryNode,
  type KyselyPlugin,
  type OperationNode,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryId,
  type QueryResult,
  type RootOperationNode,
  type SelectQueryNode,
  type UnknownRow,
  type UpdateQueryNode,
} from 'kysely'

/**
 * The query layer's wall for row isolation, beside RLS: every table a query reads, updates
 * or deletes from gets `AND <table>.tenant_id = <tenant>`, and every insert gets the
 * tenant's `tenant_id` value. A policy mistake is then not the only thing between tenants,
 * and each query names the leading column of its indexes. Raw SQL is confined by RLS alone.
 */
export class TenantRowsPlugin implements KyselyPlugin {
  readonly #transformer: TenantRowsTransformer

  constructor(tenantId: string) {
    this.#transformer = new TenantRowsTransformer(tenantId)
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.#transformer.transformNode(args.node, args.queryId)
  }

  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result)
  }
}

class TenantRowsTransformer extends OperationNodeTransformer {
  readonly #tenantId: string
  /** Names bound by `WITH` in the query being transformed: not tables, so not filtered. */
  #ctes = new Set<string>()

  constructor(tenantId: string) {
    super()
    this.#tenantId = tenantId
  }

  protected override transformSelectQuery(node: SelectQueryNode, queryId?: QueryId): SelectQueryNode {
    this.#collectCtes(node)
    const transformed = super.transformSelectQuery(node, queryId)
    return this.#filter(transformed, transformed.from?.froms ?? [])
  }

  protected override transformUpdateQuery(node: UpdateQueryNode, queryId?: QueryId): UpdateQueryNode {
    this.#collectCtes(node)
    const transformed = super.transformUpdateQuery(node, queryId)
    return this.#filter(transformed, [...(transformed.table ? [transformed.table] : []), ...(transformed.from?.froms ?? [])])
  }

  protected override transformDeleteQuery(node: DeleteQueryNode, queryId?: QueryId): DeleteQueryNode {
    this.#collectCtes(node)
    const transformed = super.transformDeleteQuery(node, queryId)
    return this.#filter(transformed, [...transformed.from.froms, ...(transformed.using?.tables ?? [])])
  }

  protected override transformJoin(node: JoinNode, queryId?: QueryId): JoinNode {
    const transformed = super.transformJoin(node, queryId)
    const predicate = this.#predicate(transformed.table)
    return predicate ? JoinNode.cloneWithOn(transformed, predicate) : transformed
  }

  protected override transformInsertQuery(node: InsertQueryNode, queryId?: QueryId): InsertQueryNode {
    const transformed = super.transformInsertQuery(node, queryId)
    const { columns, values } = transformed
    if (!columns || !values || !ValuesNode.is(values) || columns.some((c) => c.column.name === 'tenant_id')) return transformed
    const rows = values.values.map((row) =>
      PrimitiveValueListNode.is(row)
        ? PrimitiveValueListNode.create([...row.values, this.#tenantId])
        : ValueListNode.create([...row.values, ValueNode.create(this.#tenantId)]),
    )
    return { ...transformed, columns: [...columns, ColumnNode.create('tenant_id')], values: ValuesNode.create(rows) }
  }

  #filter<T extends SelectQueryNode | UpdateQueryNode | DeleteQueryNode>(node: T, tables: readonly OperationNode[]): T {
    let result = node
    for (const table of tables) {
      const predicate = this.#predicate(table)
      if (predicate) result = QueryNode.cloneWithWhere(result, predicate)
    }
    return result
  }

  /** `<name>.tenant_id = <tenant>` for a table (or an aliased table); nothing for subqueries and CTE names. */
  #predicate(table: OperationNode): OperationNode | undefined {
    let name: string | undefined
    if (TableNode.is(table)) {
      if (this.#ctes.has(table.table.identifier.name)) return undefined
      name = table.table.identifier.name
    } else if (AliasNode.is(table) && TableNode.is(table.node) && IdentifierNode.is(table.alias)) {
      if (this.#ctes.has(table.node.table.identifier.name)) return undefined
      name = table.alias.name
    }
    if (!name) return undefined
    return BinaryOperationNode.create(
      ReferenceNode.create(ColumnNode.create('tenant_id'), TableNode.create(name)),
      OperatorNode.create('='),
      ValueNode.create(this.#tenantId),
    )
  }

  #collectCtes(node: SelectQueryNode | UpdateQueryNode | DeleteQueryNode): void {
    for (const cte of node.with?.expressions ?? []) {
      const name = cte.name.table.table.identifier.name
      this.#ctes.add(name)
    }
  }
}
