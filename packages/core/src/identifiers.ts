import { randomBytes } from 'node:crypto'
import { TenantryError } from './errors.js'

/** Slug rule (seed 002): lowercase ASCII letters, digits and `_`, starting with a letter, 2 to 63 characters. */
export const SLUG_PATTERN = /^[a-z][a-z0-9_]{1,62}$/

/** Names that would collide with platform routes, database internals or SQL keywords. */
export const RESERVED_SLUGS: ReadonlySet<string> = new Set([
  'admin', 'api', 'app', 'assets', 'auth', 'catalog', 'console', 'default', 'docs', 'healthz',
  'information_schema', 'internal', 'login', 'logout', 'me', 'metrics', 'new', 'null', 'postgres',
  'public', 'root', 'settings', 'signin', 'signup', 'static', 'status', 'system', 'template',
  'template0', 'template1', 'tenant', 'tenantry', 'tenants', 'undefined', 'www',
  'all', 'alter', 'and', 'as', 'create', 'delete', 'drop', 'from', 'grant', 'insert', 'or',
  'select', 'table', 'update', 'user', 'where',
])

const RESERVED_PREFIXES = ['pg_', 'sqlite_', 'tenantry_']

/** Why a slug is refused, or `undefined` when it is acceptable. */
export function slugProblem(slug: unknown): string | undefined {
  if (typeof slug !== 'string' || slug.length === 0) return 'slug is empty'
  if (slug.length > 63) return `slug is ${slug.length} characters long; at most 63 are allowed`
  if (!SLUG_PATTERN.test(slug)) {
    const rule = 'slug must be 2-63 characters of lowercase a-z, 0-9 and "_", starting with a letter'
    // Name the first character that breaks the rule: a Cyrillic "а" looks exactly like "a".
    const bad = [...slug].find((c) => !/[a-z0-9_]/.test(c))
    if (bad) return `${rule}; it contains ${describeCharacter(bad)}`
    return rule
  }
  if (RESERVED_SLUGS.has(slug)) return `"${slug}" is a reserved name`
  const prefix = RESERVED_PREFIXES.find((p) => slug.startsWith(p))
  if (prefix) return `slugs starting with "${prefix}" are reserved`
  return undefined
}

function describeCharacter(c: string): string {
  const code = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`
  return /^[\x21-\x7e]$/.test(c) ? `"${c}" (${code})` : code
}

/** Throws `INVALID_SLUG` with the reason unless `slug` follows the slug rule. */
export function assertValidSlug(slug: unknown): asserts slug is string {
  const problem = slugProblem(slug)
  if (problem) {
    throw new TenantryError('INVALID_SLUG', `Invalid tenant slug ${JSON.stringify(slug)}: ${problem}`, {
      details: { slug },
    })
  }
}

/**
 * Identifiers of data sources and other catalog objects, and every SQL name Tenantry builds
 * itself (schemas, databases, roles): like slugs, but 1-63 characters and no reserved list.
 * 63 is Postgres's limit: a longer name would be cut short, silently.
 */
export const IDENTIFIER_PATTERN = /^[a-z][a-z0-9_]{0,62}$/

export function assertValidIdentifier(kind: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || !IDENTIFIER_PATTERN.test(value)) {
    throw new TenantryError(
      'INVALID_IDENTIFIER',
      `Invalid ${kind} ${JSON.stringify(value)}: use 1-63 characters of lowercase a-z, 0-9 and "_", starting with a letter`,
      { details: { kind, value } },
    )
  }
}

/**
 * Tenant ids are opaque and stable: `t` then 19 base-32 characters (95 random bits).
 * Lowercase letters and digits only, so an id is safe in a file name and as part of an identifier.
 */
export const TENANT_ID_PATTERN = /^t[a-z2-7]{19}$/

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

export function newTenantId(): string {
  let id = 't'
  for (const byte of randomBytes(19)) id += BASE32[byte & 31]
  return id
}

export function assertTenantId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !TENANT_ID_PATTERN.test(id)) {
    throw new TenantryError('INVALID_IDENTIFIER', `Invalid tenant id ${JSON.stringify(id)}`)
  }
}

/** Whether `id` is a tenant id (see `TENANT_ID_PATTERN`). */
export function isTenantId(id: unknown): id is string {
  return typeof id === 'string' && TENANT_ID_PATTERN.test(id)
}

/** Template keys: the hex content hash of a migration set (see `TenantMigrationSet.key`). */
export const TEMPLATE_KEY_PATTERN = /^[a-f0-9]{16,64}$/

export function assertTemplateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || !TEMPLATE_KEY_PATTERN.test(key)) {
    throw new TenantryError('INVALID_IDENTIFIER', `Invalid template key ${JSON.stringify(key)}`)
  }
}

/**
 * Quotes an SQL identifier Tenantry built itself (a schema, database or role name derived from
 * an id), after checking it against `IDENTIFIER_PATTERN` again: whatever got into the catalog,
 * nothing but such a name reaches SQL through here.
 */
export function quoteIdentifier(name: string): string {
  if (!IDENTIFIER_PATTERN.test(name)) {
    throw new TenantryError('INVALID_IDENTIFIER', `Invalid SQL identifier ${JSON.stringify(name)}`)
  }
  return `"${name}"`
}

/**
 * Quotes a name the database itself reported (a table, column, index or constraint the app's
 * migrations made): any text, with embedded quotes doubled as SQL requires.
 */
export function quoteReportedName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/**
 * A string literal for the few statements that take no parameters (`CREATE ROLE … PASSWORD`),
 * with quotes doubled. Tenantry passes only secrets it derived itself.
 */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`
}
