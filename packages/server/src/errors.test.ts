import { describe, expect, it } from 'vitest'
import { TENANTRY_ERROR_CODES, TenantryError } from 'tenantry'
import { ADMIN_ERROR_CODES, AUTH_ERROR_CODES, CLAIM_ERROR_CODES, DATA_ERROR_CODES, HttpError, SERVER_ERROR_CODES, SQL_OVER_HTTP_ERROR_CODES, SERVICES_ERROR_CODES, STATUS_BY_CODE, toHttpError } from '@tenantry/server'

const ALL_CODES = [TENANTRY_ERROR_CODES, SERVER_ERROR_CODES, AUTH_ERROR_CODES, DATA_ERROR_CODES, CLAIM_ERROR_CODES, SQL_OVER_HTTP_ERROR_CODES, SERVICES_ERROR_CODES, ADMIN_ERROR_CODES].flatMap((codes) => Object.keys(codes))

describe('one status per error code', () => {
  it('every code the server or core can raise has exactly one status, in one table', () => {
    const missing = ALL_CODES.filter((code) => !Number.isInteger((STATUS_BY_CODE as Record<string, number>)[code]))
    expect(missing).toEqual([])
    expect(Object.keys(STATUS_BY_CODE).sort()).toEqual([...new Set(ALL_CODES)].sort())
  })

  it('regression: callers chose the status (SLUG_TAKEN was 400 in one place, 409 in another); HttpError takes it from the table', () => {
    for (const code of Object.keys(STATUS_BY_CODE) as Array<keyof typeof STATUS_BY_CODE>) {
      expect(new HttpError(code).status, code).toBe(STATUS_BY_CODE[code])
    }
    expect(new HttpError('SLUG_TAKEN').status).toBe(409)
  })

  it('carries the cause, and core errors keep their code and cause', () => {
    const cause = new Error('disk full')
    expect(new HttpError('FORBIDDEN', 'no', { cause }).cause).toBe(cause)
    const core = new TenantryError('TENANT_NOT_READY', 'suspended')
    const http = toHttpError(core)
    expect(http).toMatchObject({ code: 'TENANT_NOT_READY', status: 409, message: 'suspended' })
    expect(http.cause).toBe(core)
  })

  it('what Fastify refuses keeps its meaning; anything else is a 500 that reveals nothing', () => {
    expect(toHttpError(Object.assign(new Error('x'), { statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' }))).toMatchObject({ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' })
    expect(toHttpError(Object.assign(new Error('x'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' }))).toMatchObject({ status: 413, code: 'PAYLOAD_TOO_LARGE' })
    expect(toHttpError(Object.assign(new SyntaxError('Unexpected end'), { statusCode: 400 }))).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' })
    const validation = Object.assign(new Error('x'), {
      validation: [{ keyword: 'unrecognized_keys', instancePath: '/', params: { keys: ['access'] }, message: 'Unrecognized key' }],
      validationContext: 'body',
    })
    expect(toHttpError(validation)).toMatchObject({ status: 400, code: 'VALIDATION_FAILED', message: 'body: unknown field "access"' })
    const secret = toHttpError(new Error('password=hunter2'))
    expect(secret).toMatchObject({ status: 500, code: 'INTERNAL', message: 'Internal error' })
  })
})
