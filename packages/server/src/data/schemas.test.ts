import { describe, expect, it } from 'vitest'
import { parseServerConfig } from '@tenantry/server'
import { BULK_MAX, Collection } from './index.js'

const config = parseServerConfig({
  collections: {
    notes: {
      columns: {
        id: { type: 'integer', generated: true, filterable: true, sortable: true },
        title: { type: 'text', required: true, filterable: true, searchable: true, maxLength: 20 },
        due: { type: 'date', nullable: true, filterable: true, sortable: true },
        done: { type: 'boolean', filterable: true },
      },
    },
  },
})
const notes = new Collection('notes', config.collections.notes!)
const s = notes.schemas

describe('collection schemas, built from the config', () => {
  it('create and update are strict, and name the field they refuse', () => {
    expect(s.create.parse({ title: 'a', done: true })).toEqual({ title: 'a', done: true })
    const unknown = s.create.safeParse({ title: 'a', priority: 1 })
    expect(unknown.error?.issues[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['priority'] })
    // Generated columns are readable, never written.
    expect(s.create.safeParse({ title: 'a', id: 5 }).success).toBe(false)
    expect(s.create.safeParse({ done: true }).success).toBe(false)
    expect(s.update.safeParse({}).success).toBe(false)
    expect(s.update.parse({ due: null })).toEqual({ due: null })
  })

  it('regression: bulk routes were documented as taking one row; they take { items } and { ids }', () => {
    expect(s.bulkCreate.safeParse({ title: 'a' }).success).toBe(false)
    expect(s.bulkCreate.parse({ items: [{ title: 'a' }] })).toEqual({ items: [{ title: 'a' }] })
    expect(s.bulkCreate.safeParse({ items: [] }).success).toBe(false)
    expect(s.bulkCreate.safeParse({ items: Array.from({ length: BULK_MAX + 1 }, () => ({ title: 'a' })) }).success).toBe(false)
    expect(s.bulkDelete.parse({ ids: [1, 2] })).toEqual({ ids: [1, 2] })
    expect(s.bulkDelete.safeParse({ ids: ['1'] }).success).toBe(false)
  })

  it('list parameters: declared filters and operators only, typed, with null for nullable columns', () => {
    const parsed = s.listQuery.parse({ 'id[gte]': '2', due: 'null', done: 'true', order: '-due', limit: '10', q: 'x' })
    const query = notes.listQuery(parsed)
    expect(query.filters).toEqual([
      { column: 'id', op: 'gte', value: 2 },
      { column: 'due', op: 'eq', value: null },
      { column: 'done', op: 'eq', value: 1 },
    ])
    expect(query).toMatchObject({ order: { column: 'due', direction: 'desc' }, limit: 10, q: 'x' })
    for (const bad of [{ 'title[like]': 'x' }, { id: 'one' }, { order: 'title' }, { limit: '101' }, { done: 'yes' }, { 'due[gt]': 'soon' }]) {
      expect(s.listQuery.safeParse(bad).success, JSON.stringify(bad)).toBe(false)
    }
    // Count takes filters and search; page parameters would do nothing there.
    expect(s.countQuery.safeParse({ limit: '5' }).success).toBe(false)
  })

  it('an integer primary key in a path is parsed, anything else refused', () => {
    expect(s.idParams.parse({ id: '42' })).toEqual({ id: 42 })
    expect(s.idParams.safeParse({ id: 'abc' }).success).toBe(false)
  })

  it('rows answer the declared columns as their declared types, whatever the driver returned', () => {
    const row = notes.fromDb({ id: '7', title: 'a', due: new Date('2020-01-02T00:00:00Z'), done: 1, secret: 'x' })
    expect(row).toEqual({ id: 7, title: 'a', due: '2020-01-02T00:00:00.000Z', done: true })
    expect(s.row.parse(row)).toEqual(row)
  })
})
