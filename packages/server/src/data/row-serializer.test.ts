import { describe, expect, it } from 'vitest'
import { serializerCompiler } from 'fastify-type-provider-zod'
import { parseServerConfig } from '@tenantry/server'
import { Collection } from './index.js'
import { rowsSerializerCompiler } from './row-serializer.js'

const config = parseServerConfig({
  collections: {
    notes: {
      columns: {
        id: { type: 'integer', generated: true },
        title: { type: 'text', required: true },
        due: { type: 'date', nullable: true },
        done: { type: 'boolean' },
        score: { type: 'number', nullable: true },
      },
    },
  },
})
const s = new Collection('notes', config.collections.notes!).schemas
const route = { method: 'GET', url: '/data/notes/:id' }
const row = { id: 7, title: 'Ünïcode "quoted" \\ text', due: null, done: true, score: 1.5 }

describe('the data API read serializer', () => {
  it('writes a row as the zod serializer does', () => {
    const fast = rowsSerializerCompiler({ ...route, schema: s.row, httpStatus: '200' })
    const checked = serializerCompiler({ ...route, schema: s.row })
    expect(fast(row)).toBe(checked(row))
    expect(JSON.parse(fast(row))).toEqual(row)
  })

  it('writes the declared columns only: a column the collection does not declare stays on the server', () => {
    const fast = rowsSerializerCompiler({ ...route, schema: s.row, httpStatus: '200' })
    // e.g. the tenant column of row isolation, or one a migration added without declaring it.
    const written = JSON.parse(fast({ ...row, tenant_id: 't_other', password_hash: 'x' }))
    expect(written).toEqual(row)
  })

  it('writes a page of rows and its cursor', () => {
    const fast = rowsSerializerCompiler({ method: 'GET', url: '/data/notes', schema: s.list, httpStatus: '200' })
    const page = { items: [row, { ...row, id: 8, done: false, score: null, extra: 1 }], nextCursor: null }
    expect(JSON.parse(fast(page))).toEqual({ items: [row, { ...row, id: 8, done: false, score: null }], nextCursor: null })
  })

  it('leaves every other status to the zod serializer, which checks what it writes', () => {
    const error = rowsSerializerCompiler({ ...route, schema: s.row, httpStatus: '404' })
    expect(() => error({ ...row, done: 'not a boolean' })).toThrow()
  })
})
