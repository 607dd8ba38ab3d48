import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STATUS_BY_CODE } from '@tenantry/server'
import { Client, signUp, startTestServer, verifyEmail, type Reply, type TestServer } from '@tenantry/server/testing'

/**
 * The contract of issue 7: every route in the OpenAPI document refuses an unknown field, a
 * wrong type and a wrong content type with 400 or 415 and `{ error: { code, message } }`,
 * never 2xx or 500, and the document is the one the server validates with.
 *
 * The caller is signed in as a platform admin who owns the tenant in every path (and, for
 * SQL-over-HTTP, holds that tenant's token), so authentication and tenant admission let every
 * request through to validation: each answer is checked to be validation's (400
 * VALIDATION_FAILED or 415 UNSUPPORTED_MEDIA_TYPE), never a 401/403/404 that would make the
 * walk vacuous.
 *
 * Better Auth's own routes (`/api/auth/*`) are not in the document and not walked: they are
 * Better Auth's, validated by its own schemas, and take form posts from OAuth providers on
 * purpose. e2e/server-*.test.ts exercise them.
 */

const REPO_CONFIG = fileURLToPath(new URL('../../../tenantry.config.ts', import.meta.url))
const UNKNOWN = 'accessLevel'

type JsonSchema = {
  type?: string
  properties?: Record<string, JsonSchema>
  required?: string[]
  items?: JsonSchema
  enum?: unknown[]
  pattern?: string
  minItems?: number
  minimum?: number
  nullable?: boolean
  additionalProperties?: boolean | JsonSchema
  oneOf?: JsonSchema[]
  anyOf?: JsonSchema[]
  allOf?: JsonSchema[]
  $ref?: string
}
interface Parameter {
  name: string
  in: 'query' | 'path' | 'header'
  required?: boolean
  schema: JsonSchema
}
interface Operation {
  parameters?: Parameter[]
  requestBody?: { content: Record<string, { schema: JsonSchema }> }
  responses: Record<string, unknown>
}
interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, JsonSchema> }
}

let server: TestServer
let doc: OpenApiDocument
let admin: Client
let sqlClient: Client
let slug: string
let tokenId: string

beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG, env: { TENANTRY_PLATFORM_ADMINS: 'root@contract.test' } })
  admin = await signUp(server, 'root@contract.test')
  await verifyEmail(server, 'root@contract.test')
  slug = (await admin.get('/api/me')).body.activeTenant.slug
  const { token, record } = await server.tenantry.tokens.create(slug, { readOnly: false })
  tokenId = record.id
  sqlClient = new Client(server.url, { authorization: `Bearer ${token}` })
  doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as OpenApiDocument
})
afterAll(async () => server?.stop())

/** `{ error: { code, message } }` with the status the one table gives its code. */
function problems(reply: Reply, expected: { status: number; code: string; names?: string }): string[] {
  const out: string[] = []
  const error = reply.body?.error
  if (reply.status !== expected.status) out.push(`status ${reply.status}, expected ${expected.status}: ${reply.text.slice(0, 200)}`)
  if (typeof error?.code !== 'string' || typeof error?.message !== 'string') {
    out.push(`body is not { error: { code, message } }: ${reply.text.slice(0, 200)}`)
    return out
  }
  if (error.code !== expected.code) out.push(`code ${error.code}, expected ${expected.code}: ${error.message}`)
  if (STATUS_BY_CODE[error.code as keyof typeof STATUS_BY_CODE] !== reply.status) out.push(`${error.code} answered ${reply.status}, the table says ${STATUS_BY_CODE[error.code as keyof typeof STATUS_BY_CODE]}`)
  if (expected.names && !error.message.includes(`"${expected.names}"`) && !error.message.includes(`.${expected.names}:`)) {
    out.push(`message does not name "${expected.names}": ${error.message}`)
  }
  return out
}

function resolveRef(schema: JsonSchema): JsonSchema {
  if (!schema.$ref) return schema
  const name = schema.$ref.replace('#/components/schemas/', '')
  return doc.components?.schemas?.[name] ?? {}
}

/** Patterns the document uses, with a value each accepts. */
const PATTERN_SAMPLES: Array<[string, string]> = [
  ['^\\d{4}-\\d{2}-\\d{2}$', '2020-01-01'],
  ['^\\d{1,6}[smhdw]$', '30d'],
  ['^-?\\d{1,15}$', '1'],
  ['^-?\\d{1,16}$', '1'],
]

/**
 * A value `schema` accepts: its required properties (or, when none is required, its first
 * property, as an update needs at least one), the smallest arrays.
 */
function sample(input: JsonSchema): unknown {
  const schema = resolveRef(input)
  const branch = schema.oneOf?.[0] ?? schema.anyOf?.[0] ?? schema.allOf?.[0]
  if (branch) return sample(branch)
  if (schema.enum) return schema.enum[0]
  switch (schema.type) {
    case 'object': {
      const out: Record<string, unknown> = {}
      const names = schema.required?.length ? schema.required : Object.keys(schema.properties ?? {}).slice(0, 1)
      for (const name of names) out[name] = sample(schema.properties?.[name] ?? {})
      return out
    }
    case 'array':
      return Array.from({ length: schema.minItems ?? 0 }, () => sample(schema.items ?? {}))
    case 'integer':
    case 'number':
      return Math.max(schema.minimum ?? 1, 1)
    case 'boolean':
      return true
    case 'string': {
      if (!schema.pattern) return 'x'
      const known = PATTERN_SAMPLES.find(([pattern]) => pattern === schema.pattern)
      if (!known) throw new Error(`teach the contract test a value for pattern ${schema.pattern}`)
      return known[1]
    }
    default:
      return null
  }
}

/** A value of the wrong JSON type for `schema`, or `undefined` when every JSON value is of its type. */
function wrongJsonValue(input: JsonSchema): unknown {
  const schema = resolveRef(input)
  if (schema.enum) return 'not-one-of-them'
  switch (schema.type) {
    case 'string':
      return 12345
    case 'integer':
    case 'number':
      return 'not-a-number'
    case 'boolean':
      return 'yes'
    case 'array':
    case 'object':
      return 'not-a-list-or-object'
    default:
      return undefined
  }
}

/** A text a query or path parameter of `schema` refuses, or `undefined` when it takes any text. */
function wrongText(input: JsonSchema): string | undefined {
  const schema = resolveRef(input)
  if (schema.enum) return 'not-one-of-them'
  if (schema.type === 'integer' || schema.type === 'number') return 'not-a-number'
  if (schema.type === 'boolean') return 'yes-please'
  if (schema.pattern) return '!not-matching!'
  const branches = schema.anyOf ?? schema.oneOf
  if (branches?.every((b) => wrongText(b) !== undefined)) return '!not-matching!'
  return undefined
}

interface Walked {
  route: string
  checks: string[]
  skipped: string[]
  failures: string[]
}

async function walk(path: string, method: string, operation: Operation): Promise<Walked> {
  const route = `${method.toUpperCase()} ${path}`
  const client = path.startsWith('/v2') || path.startsWith('/v3') ? sqlClient : admin
  const params = operation.parameters ?? []
  const pathParams = params.filter((p) => p.in === 'path')
  const query = params.filter((p) => p.in === 'query')
  // A path parameter is its documented example where it has one (a claim id is no '1'), else '1'.
  const example = (name: string) => {
    const value = (pathParams.find((p) => p.name === name)?.schema as { example?: unknown } | undefined)?.example
    return typeof value === 'string' ? value : undefined
  }
  const fill = (values: Record<string, string> = {}) =>
    path.replace(/\{(\w+)\}/g, (_, name: string) =>
      encodeURIComponent(values[name] ?? (name === 'slug' ? slug : name === 'id' && path.includes('/tokens/') ? tokenId : (example(name) ?? '1'))),
    )
  const bodySchema = operation.requestBody?.content['application/json']?.schema
  const body = bodySchema ? (sample(bodySchema) as Record<string, unknown>) : undefined
  const send = (url: string, payload?: unknown, headers?: Record<string, string>) =>
    client.request(method.toUpperCase(), url, payload, headers)
  const result: Walked = { route, checks: [], skipped: [], failures: [] }
  const check = (name: string, reply: Reply, expected: Parameters<typeof problems>[1]) => {
    result.checks.push(name)
    for (const p of problems(reply, expected)) result.failures.push(`${route} [${name}] ${p}`)
  }

  // (a) an unknown field: in the body for routes with one, and in the query for every route.
  if (body) check('unknown body field', await send(fill(), { ...body, [UNKNOWN]: 'read-only' }), { status: 400, code: 'VALIDATION_FAILED', names: UNKNOWN })
  check('unknown query field', await send(`${fill()}?${UNKNOWN}=read-only`, body), { status: 400, code: 'VALIDATION_FAILED', names: UNKNOWN })

  // (b) a wrong type for a declared field: a body property, else a query or path parameter.
  const resolved = bodySchema && resolveRef(bodySchema)
  const property = Object.entries(resolved?.properties ?? {}).find(([, s]) => wrongJsonValue(s) !== undefined)
  const parameter = [...query, ...pathParams].find((p) => wrongText(p.schema) !== undefined && p.name !== 'slug')
  if (property) {
    const [name, schema] = property
    check(`wrong type: body.${name}`, await send(fill(), { ...body, [name]: wrongJsonValue(schema) }), { status: 400, code: 'VALIDATION_FAILED', names: name })
  } else if (parameter) {
    const bad = wrongText(parameter.schema)!
    const url = parameter.in === 'path' ? fill({ [parameter.name]: bad }) : `${fill()}?${encodeURIComponent(parameter.name)}=${encodeURIComponent(bad)}`
    check(`wrong type: ${parameter.in}.${parameter.name}`, await send(url, body), { status: 400, code: 'VALIDATION_FAILED', names: parameter.name })
  } else {
    result.skipped.push('wrong type: it declares no field that a value can have the wrong type for')
  }

  // (c) a wrong content type, for routes with a body: a form post and plain text.
  if (body) {
    const form = new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString() || `${UNKNOWN}=1`
    check('form-encoded body', await send(fill(), form, { 'content-type': 'application/x-www-form-urlencoded' }), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' })
    check('text/plain body', await send(fill(), JSON.stringify(body), { 'content-type': 'text/plain' }), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' })
  }
  return result
}

interface ErrorAnswer {
  description?: string
  headers?: Record<string, unknown>
  content?: Record<string, { schema: JsonSchema }>
}

/**
 * The error statuses a route must document, from what it is (issue 9): every route can be
 * invalid, unauthenticated, forbidden, too slow and rate limited (the public version probes:
 * invalid, too slow, rate limited); one naming something (path
 * parameters) or served inside a tenant can be 404; one with a body 413 and 415; one inside a
 * tenant 503; SQL-over-HTTP's pipelines 422 (a result past the row cap).
 */
function expectedErrorStatuses(path: string, op: Operation): string[] {
  if (/^\/v[23]$/.test(path)) return ['400', '408', '429'] // the Hrana version probes: no credentials, no tenant
  const tenant = /^\/(api\/t\/|api\/tenant(\/|$)|v2(\/|$)|v3(\/|$))/.test(path)
  const statuses = ['400', '401', '403', '408', '429']
  if (path.includes('{') || tenant) statuses.push('404')
  if (op.requestBody) statuses.push('413', '415')
  if (op.requestBody && /^\/v[23]\//.test(path)) statuses.push('422')
  if (tenant) statuses.push('503')
  return statuses
}

describe('the OpenAPI document is the contract', () => {
  it('documents every API route, each with its answer and only strict bodies', () => {
    const operations = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })))
    expect(operations.length).toBeGreaterThan(50)
    for (const prefix of ['/api/me', '/api/t/{slug}/data/', '/api/tenant/data/', '/api/t/{slug}/tokens', '/api/tenant/read-only-access', '/api/admin/', '/v2/pipeline']) {
      expect(operations.some((o) => o.path.startsWith(prefix)), prefix).toBe(true)
    }
    expect(operations.some((o) => o.path.startsWith('/api/auth'))).toBe(false)
    const missing: string[] = []
    for (const { path, method, op } of operations) {
      const route = `${method.toUpperCase()} ${path}`
      if (!Object.keys(op.responses).some((s) => /^2\d\d$/.test(s))) missing.push(`${route}: no 2xx answer`)
      if (!op.responses['4XX'] || !op.responses['5XX']) missing.push(`${route}: error answers not documented`)
      for (const status of expectedErrorStatuses(path, op)) {
        const answer = op.responses[status] as ErrorAnswer | undefined
        if (!answer) {
          missing.push(`${route}: ${status} not documented`)
          continue
        }
        const schema = resolveRef(answer.content?.['application/json']?.schema ?? {})
        const error = resolveRef(schema.properties?.error ?? {})
        if (!schema.required?.includes('error') || !error.properties?.code || !error.properties?.message) missing.push(`${route}: ${status} is not the error body`)
        if ((status === '429' || status === '503') && !answer.headers?.['retry-after']) missing.push(`${route}: ${status} without Retry-After`)
      }
      const body = op.requestBody?.content['application/json']?.schema
      if (body && resolveRef(body).additionalProperties !== false) missing.push(`${route}: body is not strict`)
      if (op.requestBody && !body) missing.push(`${route}: body is not JSON`)
    }
    expect(missing).toEqual([])
  })

  it('every route refuses an unknown field, a wrong type and a wrong content type: 400 or 415, never 2xx or 500', async () => {
    const walked: Walked[] = []
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(ops)) walked.push(await walk(path, method, operation))
    }
    expect(walked.flatMap((w) => w.failures)).toEqual([])
    const checks = walked.flatMap((w) => w.checks)
    // Every route got (a); every route with a body got (c); most got (b).
    expect(checks.filter((c) => c === 'unknown query field')).toHaveLength(walked.length)
    const withBody = walked.filter((w) => w.checks.includes('unknown body field'))
    expect(withBody.length).toBeGreaterThan(20)
    expect(withBody.every((w) => w.checks.includes('form-encoded body') && w.checks.includes('text/plain body'))).toBe(true)
    expect(checks.filter((c) => c.startsWith('wrong type')).length).toBeGreaterThan(walked.length / 2)
    // (b) cannot apply where every declared field takes any text (a slug, a token id) or none is
    // declared: listed, so that a new route without typed fields is a decision, not an accident.
    expect(walked.filter((w) => w.skipped.length).map((w) => w.route).sort()).toEqual([
      'DELETE /api/t/{slug}/files/{*}',
      'DELETE /api/t/{slug}/read-only-access',
      'DELETE /api/t/{slug}/tokens/{id}',
      'DELETE /api/tenant/files/{*}',
      'DELETE /api/tenant/read-only-access',
      'DELETE /api/tenant/tokens/{id}',
      'GET /api/admin/data-sources',
      'GET /api/admin/migrations',
      'GET /api/admin/migrations/run',
      'GET /api/admin/tenants',
      'GET /api/admin/tenants/{slug}',
      'GET /api/admin/tenants/{slug}/backups',
      'GET /api/admin/tenants/{slug}/limits',
      'GET /api/admin/tenants/{slug}/quotas',
      'GET /api/me',
      'GET /api/sign-in-providers',
      'GET /api/t/{slug}/files/{*}',
      'GET /api/t/{slug}/jobs',
      'GET /api/t/{slug}/read-only-access',
      'GET /api/t/{slug}/secrets',
      'GET /api/t/{slug}/tokens',
      'GET /api/tenant/files/{*}',
      'GET /api/tenant/jobs',
      'GET /api/tenant/read-only-access',
      'GET /api/tenant/secrets',
      'GET /api/tenant/tokens',
      'GET /v2',
      'GET /v3',
      'POST /api/admin/tenants/{slug}/backups',
      'POST /api/admin/tenants/{slug}/erase',
      'POST /api/admin/tenants/{slug}/resume',
      'POST /api/admin/tenants/{slug}/suspend',
      'POST /api/t/{slug}/read-only-access',
      'POST /api/tenant/read-only-access',
      'PUT /api/t/{slug}/files/{*}',
      'PUT /api/tenant/files/{*}',
    ])
  })

  it('regression: a form-encoded body answered 500; it is 415 UNSUPPORTED_MEDIA_TYPE and creates nothing', async () => {
    const before = (await admin.get(`/api/t/${slug}/data/jobs/count`)).body.count
    const reply = await admin.request('POST', `/api/t/${slug}/data/jobs`, 'company=Acme&title=CTO&start_date=2020-01-01', {
      'content-type': 'application/x-www-form-urlencoded',
    })
    expect(problems(reply, { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' })).toEqual([])
    expect((await admin.get(`/api/t/${slug}/data/jobs/count`)).body.count).toBe(before)
  })

  it('regression: SLUG_TAKEN answered 400 from organization create and 409 from the admin API; one code, one status', async () => {
    await server.tenantry.createTenant({ slug: 'taken_once' })
    const viaAdmin = await admin.post('/api/admin/tenants', { slug: 'taken_once' })
    const viaOrganization = await admin.post('/api/auth/organization/create', { name: 'Taken', slug: 'taken_once' })
    expect(problems(viaAdmin, { status: STATUS_BY_CODE.SLUG_TAKEN, code: 'SLUG_TAKEN' })).toEqual([])
    // Better Auth's routes answer in its own shape (`{ code, message }`), at the same status.
    expect(viaOrganization.status).toBe(STATUS_BY_CODE.SLUG_TAKEN)
    expect(viaOrganization.body).toMatchObject({ code: 'SLUG_TAKEN', message: expect.any(String) })
  })
})
