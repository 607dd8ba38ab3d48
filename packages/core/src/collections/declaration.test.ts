import { describe, it } from 'vitest'
import { collections as cvBuilder } from '../../../../examples/cv-builder/collections.js'
import { collectionsInReferenceOrder, parseCollections } from './declaration.js'

// Issue 10: one strict schema for collection declarations, in core, with declared foreign keys.

const column = (type: string, extra: Record<string, unknown> = {}) => ({ type, ...extra })

describe('collection declarations', () => {
  it('parse strictly, fill defaults and resolve the table', ({ expect }) => {
    const parsed = parseCollections({ notes: { columns: { id: column('integer', { generated: true }), title: column('text') } } })
    expect(parsed.notes).toMatchObject({ table: 'notes', primaryKey: 'id', maxLimit: 100 })
    expect(parsed.notes!.columns.title).toEqual({ type: 'text', required: false, nullable: false, generated: false, filterable: false, sortable: false, searchable: false })
    expect(() => parseCollections({ notes: { columns: { id: column('integer', { searchabel: true }) } } })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(/^server\.collections\.notes\.columns\.id: .*searchabel/) }),
    )
    expect(() => parseCollections({ notes: { primaryKey: 'key', columns: { id: column('integer') } } })).toThrow(/primary key "key" is not among its columns/)
    expect(() => parseCollections({ 'Bad-Name': { columns: { id: column('integer') } } })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }))
  })

  it('references: the collection must be declared, and the column of its primary key’s type', ({ expect }) => {
    const jobs = { columns: { id: column('integer', { generated: true }) } }
    const ok = parseCollections({ jobs, highlights: { columns: { id: column('integer'), job_id: column('integer', { references: 'jobs' }) } } })
    expect(ok.highlights!.columns.job_id!.references).toBe('jobs')
    expect(() => parseCollections({ jobs, highlights: { columns: { id: column('integer'), job_id: column('integer', { references: 'job' }) } } })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: 'server.collections.highlights.columns.job_id.references: no collection "job" is declared' }),
    )
    expect(() => parseCollections({ jobs, highlights: { columns: { id: column('integer'), job_id: column('text', { references: 'jobs' }) } } })).toThrow(
      'server.collections.highlights.columns.job_id.references: the column is text but jobs.id (its primary key) is integer',
    )
    const cascading = parseCollections({ jobs, highlights: { columns: { id: column('integer'), job_id: column('integer', { references: 'jobs', onDelete: 'cascade' }) } } })
    expect(cascading.highlights!.columns.job_id!.onDelete).toBe('cascade')
    expect(() => parseCollections({ jobs, highlights: { columns: { id: column('integer'), job_id: column('integer', { onDelete: 'cascade' }) } } })).toThrow(
      'server.collections.highlights.columns.job_id.onDelete: only a column with references has one',
    )
    expect(() => parseCollections({ jobs, highlights: { columns: { id: column('integer'), job_id: column('integer', { references: 'jobs', onDelete: 'drop' }) } } })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    )
    const keyed = { primaryKey: 'code', columns: { code: column('text') } }
    expect(parseCollections({ keyed, uses: { columns: { id: column('integer'), code: column('text', { references: 'keyed' }) } } }).uses!.columns.code!.references).toBe('keyed')
  })

  it('the CV builder declares highlights.job_id as a reference to jobs, and parses', ({ expect }) => {
    expect(cvBuilder.highlights.columns.job_id).toMatchObject({ references: 'jobs', onDelete: 'cascade' })
    expect(parseCollections(cvBuilder).highlights!.columns.job_id!.references).toBe('jobs')
    expect(collectionsInReferenceOrder(cvBuilder)).toEqual(['jobs', 'highlights'])
  })

  it('collectionsInReferenceOrder: referenced collections first, else declaration order; a cycle is a config error naming it', ({ expect }) => {
    const ref = (target?: string) => ({ columns: { id: column('integer'), ...(target ? { other_id: column('integer', { references: target }) } : {}) } })
    expect(collectionsInReferenceOrder({ c: ref('b'), b: ref('a'), a: ref(), d: ref() })).toEqual(['a', 'b', 'c', 'd'])
    // A collection referencing itself (a tree) is no cycle.
    expect(collectionsInReferenceOrder({ tree: ref('tree'), leaf: ref('tree') })).toEqual(['tree', 'leaf'])
    expect(() => collectionsInReferenceOrder({ a: ref('b'), b: ref('c'), c: ref('a'), d: ref() })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: 'server.collections: the references form a cycle: a → b → c → a', details: { cycle: ['a', 'b', 'c', 'a'] } }),
    )
    // parseCollections refuses one too.
    expect(() => parseCollections({ a: ref('b'), b: ref('a') })).toThrow(/cycle: a → b → a/)
  })
})
