import { describe, expect, it } from 'vitest'
import { Collection } from '../../server/src/data/collection.js'
import { foldSearch as serverFold, SEARCH_MAX_LENGTH as SERVER_SEARCH_MAX } from '../../server/src/data/search.js'
import { parseServerConfig } from '../../server/src/server-config.js'
import { collections } from '../../../examples/cv-builder/collections.js'
import { resolveCollection } from './declaration.js'
import { comparator, compareValues, cursorAfter, listQuery } from './query.js'
import { foldSearch, matchesSearch, SEARCH_MAX_LENGTH } from './search.js'

// The local backend's semantics are the server's, written browser-safe in this package. These
// tests hold the two definitions together until the server imports them from here.

describe('search fold', () => {
  it('folds every text exactly as the server does', () => {
    const texts = ['ÄRZTE', 'Ärzte-Verband', 'ΣΊΣΥΦΟΣ', 'σίσυφος', 'İstanbul', 'STRASSE', 'Straße', 'ǅemal', 'A\u0308rzte', 'ﬁle', 'Ⅻ', '𐐀𐐨', '50%_x', '']
    for (const text of texts) expect(foldSearch(text), text).toBe(serverFold(text))
    expect(SEARCH_MAX_LENGTH).toBe(SERVER_SEARCH_MAX)
  })

  it('matches a plain folded substring of any column, no wildcards', () => {
    expect(matchesSearch(['ÄRZTE ohne Grenzen'], 'ärzte')).toBe(true)
    expect(matchesSearch([null, 'Σίσυφος'], 'ΣΊΣΥΦΟΣ')).toBe(true)
    expect(matchesSearch(['Stark 50%'], '5_%')).toBe(false)
    expect(matchesSearch(['arztpraxis'], 'ärzt')).toBe(false)
  })
})

describe('order and cursors', () => {
  const jobs = resolveCollection('jobs', collections.jobs)
  const server = new Collection('jobs', parseServerConfig({ collections }).collections.jobs!)

  it('orders text by code point, as SQLite’s binary collation, not by UTF-16 unit', () => {
    expect(compareValues('\u{1F600}', '\uFF21')).toBe(1) // U+1F600 after U+FF21, though its first unit (0xD83D) is smaller
    expect(compareValues('Z', 'a')).toBe(-1)
    expect(compareValues('Ärzte', 'Zürich')).toBe(1)
    expect(compareValues(true, 0)).toBe(1)
  })

  it('puts nulls first ascending and last descending, ties by primary key', () => {
    const rows = [
      { id: 3, location: 'b' },
      { id: 1, location: null },
      { id: 2, location: 'b' },
      { id: 4, location: null },
    ]
    expect([...rows].sort(comparator({ order: { column: 'location', direction: 'asc' } }, 'id')).map((r) => r.id)).toEqual([1, 4, 2, 3])
    expect([...rows].sort(comparator({ order: { column: 'location', direction: 'desc' } }, 'id')).map((r) => r.id)).toEqual([3, 2, 4, 1])
  })

  it('writes and reads the server’s cursor format', () => {
    for (const order of ['-location', 'start_date', 'id']) {
      const row = { id: 7, location: order === '-location' ? null : 'Zürich', start_date: '2020-01-01' }
      const query = listQuery(jobs, { order })
      const mine = cursorAfter(row, query, 'id')
      expect(mine, order).toBe(server.cursorAfter(row, server.listQuery({ order })))
      expect(listQuery(jobs, { order, cursor: mine }).cursor, order).toEqual(server.listQuery({ order, cursor: mine }).cursor)
    }
  })
})
