import { describe, expect, it } from 'vitest'
import { publicPathPattern } from './index.js'

describe('publicPathPattern', () => {
  const isPublic = publicPathPattern(['/api/auth/', '/v2', '/healthz', '/openapi.json'])

  it('matches a prefix ending in / and everything under it', () => {
    expect(isPublic.test('/api/auth/sign-in/email')).toBe(true)
    expect(isPublic.test('/api/auth/')).toBe(true)
    expect(isPublic.test('/api/auth')).toBe(false)
    expect(isPublic.test('/api/authority')).toBe(false)
  })

  it('matches any other path itself, under it and with a query string, and nothing that merely starts like it', () => {
    for (const url of ['/v2', '/v2/pipeline', '/v2?x=1', '/healthz', '/healthz?probe', '/openapi.json']) expect(isPublic.test(url), url).toBe(true)
    for (const url of ['/v2x', '/v20/pipeline', '/healthzz', '/openapi.jsonp', '/openapiXjson', '/api/t/acme/v2', '/x?next=/v2']) expect(isPublic.test(url), url).toBe(false)
  })
})
