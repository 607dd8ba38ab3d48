import type { CollectionClient } from '../client.js'
import { isTenantryClientError } from '../errors.js'

/** What the suite needs: a client over collections shaped like the CV builder's `jobs` and `highlights`. */
export interface ConformanceClient {
  // The suite writes literal rows of the CV builder's shape; its record is compared, not typed.
  collection(name: 'jobs' | 'highlights'): CollectionClient<any>
}

/** One step's result: rows as answered (timestamps shown as their format), or `{ error, status }`. */
export interface Observation {
  step: string
  value: unknown
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/

/** Generated timestamps differ by the second between runs: the record keeps only whether they have the server's format. */
function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize)
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, (k === 'created_at' || k === 'updated_at') && typeof v === 'string' ? (TIMESTAMP.test(v) ? '<timestamp>' : v) : normalize(v)]),
    )
  }
  return value
}

const job = (company: string, start_date: string, extra: Record<string, unknown> = {}) => ({ company, title: 'Engineer', start_date, ...extra })

/**
 * Runs the suite against `client`, whose backend must start empty, and answers what every step
 * saw. CRUD, validation errors, order with nulls, cursor pages, filters, search (non-ASCII),
 * count, bulk all-or-none, in one fixed sequence (ids depend on it).
 */
export async function runConformance(client: ConformanceClient): Promise<Observation[]> {
  const out: Observation[] = []
  const jobs = client.collection('jobs')
  const highlights = client.collection('highlights')
  const step = async (name: string, fn: () => Promise<unknown>): Promise<unknown> => {
    let value: unknown
    try {
      value = normalize(await fn())
    } catch (error) {
      if (!isTenantryClientError(error)) throw error
      value = { error: error.code, status: error.status }
    }
    out.push({ step: name, value })
    return value
  }
  const ids = (page: { items: Array<Record<string, unknown>> }) => page.items.map((r) => r.id as number)

  // CRUD on one row.
  const first = (await step('create', () => jobs.create(job('Initech', '2019-02-01', { location: 'Austin' })))) as { id: number }
  await step('get', () => jobs.get(first.id))
  await step('update', () => jobs.update(first.id, { title: 'CTO', end_date: '2021-01-01' }))
  await step('update: set nullable to null', () => jobs.update(first.id, { location: null }))
  await step('get missing', () => jobs.get(999_999))
  await step('update missing', () => jobs.update(999_999, { title: 'x' }))
  await step('delete missing', () => jobs.delete(999_999))
  await step('highlight with the table defaults', () => highlights.create({ job_id: first.id, content: 'Shipped 100%_done' }))
  await step('highlight, every column', () =>
    highlights.create({ job_id: first.id, content: 'Cut costs', domains: '["ops"]', skills: '["sql"]', metric: '-30%', hidden: true, position: 2 }),
  )

  // Validation: the same mistakes, the same code, nothing written.
  await step('create: required missing', () => jobs.create({ company: 'NoTitle', start_date: '2020-01-01' }))
  await step('create: unknown field', () => jobs.create(job('Unknown', '2020-01-01', { salary: 1 })))
  await step('create: generated field', () => jobs.create(job('Generated', '2020-01-01', { id: 77 })))
  await step('create: too long', () => jobs.create(job('x'.repeat(201), '2020-01-01')))
  await step('create: longest allowed', () => jobs.create(job('y'.repeat(200), '2001-01-01')))
  await step('create: null where not nullable', () => jobs.create({ company: 'Null', title: null, start_date: '2020-01-01' }))
  await step('create: wrong type', () => jobs.create(job('Typed', '2020-01-01', { location: 5 })))
  await step('create: not a date', () => jobs.create(job('Dated', '01/02/2020')))
  await step('highlight: not a boolean', () => highlights.create({ job_id: first.id, content: 'x', hidden: 'yes' }))
  await step('highlight: not an integer', () => highlights.create({ job_id: first.id, content: 'x', position: 1.5 }))
  await step('update: nothing to change', () => jobs.update(first.id, {}))
  await step('update: unknown field', () => jobs.update(first.id, { salary: 1 }))
  await step('count after refused writes', () => jobs.count())

  // Bulk: all or none.
  const companies = ['Acme', 'Globex', 'ÄRZTE ohne Grenzen', 'Umbrella', 'Ärzte-Verband', 'Acme', 'Stark 50%', 'Σίσυφος', 'Hooli', 'arztpraxis']
  const items = companies.map((c, i) =>
    job(c, `20${10 + i}-0${1 + (i % 3)}-01`, {
      location: i % 3 === 0 ? null : i % 3 === 1 ? 'Berlin' : 'Zürich',
      ...(i === 3 ? { description: 'Ärztin im Praktikum' } : {}),
    }),
  )
  await step('bulk: one invalid item refuses all', () => jobs.bulkCreate([...items.slice(0, 3), { company: 'Broken', start_date: '2020-01-01' }]))
  await step('bulk: empty', () => jobs.bulkCreate([]))
  await step('bulk: over 500', () => jobs.bulkCreate(Array.from({ length: 501 }, (_, i) => job(`Many ${i}`, '2020-01-01'))))
  await step('count after refused bulks', () => jobs.count())
  const created = (await step('bulk create', () => jobs.bulkCreate(items))) as Array<{ id: number }>
  await step('count after bulk', () => jobs.count())

  // Order: default, each direction, nulls first ascending and last descending, ties by primary key.
  await step('list: default order (-start_date)', async () => ids(await jobs.list()))
  await step('list: location ascending', async () => (await jobs.list({ order: 'location' })).items.map((r: any) => [r.id, r.location]))
  await step('list: location descending', async () => (await jobs.list({ order: '-location' })).items.map((r: any) => [r.id, r.location]))
  await step('list: company ascending (code point order)', async () => (await jobs.list({ order: 'company' })).items.map((r: any) => r.company))
  await step('list: id descending, limit 4', async () => await jobs.list({ order: '-id', limit: 4 }))

  // Cursor pages: every row exactly once, same cursors.
  for (const order of ['-location', 'location', 'end_date', '-start_date', 'id']) {
    await step(`pages of 3 by ${order}`, async () => {
      const pages: unknown[] = []
      let cursor: string | null = null
      do {
        const page: { items: Array<Record<string, unknown>>; nextCursor: string | null } = await jobs.list({ order, limit: 3, ...(cursor ? { cursor } : {}) })
        pages.push({ ids: ids(page), nextCursor: page.nextCursor })
        cursor = page.nextCursor
      } while (cursor)
      return pages
    })
  }
  await step('cursor of another order', async () => {
    const page = await jobs.list({ order: 'company', limit: 2 })
    return jobs.list({ order: '-company', cursor: page.nextCursor! })
  })
  await step('cursor: garbage', () => jobs.list({ cursor: 'not-a-cursor' }))

  // Filters.
  await step('filter: equals', async () => ids(await jobs.list({ where: { company: 'Acme' } })))
  await step('filter: range', async () => ids(await jobs.list({ where: { start_date: { gte: '2012-01-01', lt: '2015-01-01' } }, order: 'start_date' })))
  await step('filter: is null', async () => ids(await jobs.list({ where: { location: null }, order: 'id' })))
  await step('filter: is not null', async () => ids(await jobs.list({ where: { location: { ne: null } }, order: 'id' })))
  await step('filter: not equal leaves nulls out', async () => ids(await jobs.list({ where: { location: { ne: 'Berlin' } }, order: 'id' })))
  await step('filter: id greater', async () => ids(await jobs.list({ where: { id: { gt: created[5]!.id } }, order: 'id' })))
  await step('filter: boolean', async () => (await highlights.list({ where: { hidden: false } })).items.map((r: any) => [r.id, r.hidden]))
  await step('filter: not filterable', () => jobs.list({ where: { description: 'x' } }))
  await step('filter: unknown operator', () => jobs.list({ where: { company: { like: 'A%' } as never } }))
  await step('filter: wrong type', () => jobs.list({ where: { id: 'one' } }))

  // Search: Unicode case-insensitive substring, no wildcards.
  for (const q of ['ÄRZTE', 'ärzte', 'ÄRZT', 'arzt', 'acm', 'ΣΊΣΥΦΟΣ', 'σίσυφος', '50%', '%', '_', 'engineer', 'zürich', 'nothing-like-this']) {
    await step(`search ${q}`, async () => ids(await jobs.list({ q, order: 'id' })))
  }
  await step('search and filter', async () => ids(await jobs.list({ q: 'ärzte', where: { location: 'Zürich' }, order: 'id' })))
  await step('search highlights', async () => ids(await highlights.list({ q: '100%_DONE' })))
  await step('search: too long', () => jobs.list({ q: 'x'.repeat(201) }))

  // Count.
  await step('count: all', () => jobs.count())
  await step('count: filter', () => jobs.count({ where: { company: 'Acme' } }))
  await step('count: search', () => jobs.count({ q: 'ÄRZTE' }))
  await step('count: null filter', () => jobs.count({ where: { location: null } }))

  // Limits of list.
  await step('list: order not sortable', () => jobs.list({ order: 'description' }))
  await step('list: limit over max', () => jobs.list({ limit: 101 }))
  await step('list: limit zero', () => jobs.list({ limit: 0 }))

  // Deletes last (SQLite may reuse the highest id, IndexedDB never does).
  await step('bulk delete, one id unknown', () => jobs.bulkDelete([created[0]!.id, created[1]!.id, 999_999]))
  await step('bulk delete: empty', () => jobs.bulkDelete([]))
  await step('delete', () => jobs.delete(created[2]!.id))
  await step('get deleted', () => jobs.get(created[2]!.id))
  await step('count at the end', () => jobs.count())

  // Declared foreign keys (`references`, `onDelete: 'cascade'`): a highlight needs its job, and goes with it.
  await step('highlight of a missing job', () => highlights.create({ job_id: 999_999, content: 'Orphan' }))
  await step('highlights of the first job', () => highlights.count({ where: { job_id: first.id } }))
  await step('delete a job with highlights', () => jobs.delete(first.id))
  await step('its highlights went with it', () => highlights.count({ where: { job_id: first.id } }))
  const last = (await step('one more job', () => jobs.create(job('Cascade', '2022-01-01')))) as { id: number }
  // Its id is not observed: SQLite may reuse the ids of the highlights just deleted, IndexedDB never does.
  await step('its highlight', async () => (await highlights.create({ job_id: last.id, content: 'Kept until the job goes' })).content)
  await step('bulk delete cascades too', () => jobs.bulkDelete([last.id]))
  await step('highlights at the end', () => highlights.count())
  return out
}
