import { useCallback, useEffect, useId, useState } from 'react'
import { ErrorMessage } from '../components/ErrorMessage.js'
import { Link } from '../router.js'
import { useConsole } from '../session.js'
import { HighlightForm, JobForm, listText, type Highlight, type Job } from './cv-forms.js'

/**
 * Seed 000's CV builder: jobs and their highlights, with create, edit, delete, search and
 * filters. The same screen anonymously (IndexedDB: "Stored locally") and signed in (the
 * workspace on the server: "Stored in your workspace"): only the backend differs.
 */

interface Filters {
  q: string
  location: string
  currentOnly: boolean
  showHidden: boolean
}

const PAGE = 50
/** The data API's largest page. */
const MAX_LIMIT = 100

function StorageBadge() {
  const { mode, me } = useConsole()
  return mode === 'local' ? (
    <p className="badge local">
      <strong>Stored locally</strong> <span className="muted">in this browser. <Link href="/sign-up">Create an account</Link> to keep it in a workspace.</span>
    </p>
  ) : (
    <p className="badge remote">
      <strong>Stored in your workspace</strong> <span className="muted">{me?.activeTenant?.name}</span>
    </p>
  )
}

function Highlights({ job, filters, version, onChange }: { job: Job; filters: Filters; version: number; onChange: () => void }) {
  const { data } = useConsole()
  const id = useId()
  const [items, setItems] = useState<Highlight[]>()
  const [error, setError] = useState<unknown>()
  const [editing, setEditing] = useState<number | 'new' | undefined>()
  useEffect(() => {
    if (!data) return
    let live = true
    data
      .collection('highlights')
      .list({ where: { job_id: job.id, ...(filters.showHidden ? {} : { hidden: false }) }, order: 'position', limit: MAX_LIMIT })
      .then((page) => live && (setItems(page.items), setError(undefined)), (e) => live && setError(e))
    return () => {
      live = false
    }
  }, [data, job.id, filters.showHidden, version])

  const run = async (action: () => Promise<unknown>) => {
    setError(undefined)
    try {
      await action()
      setEditing(undefined)
      onChange()
    } catch (e) {
      setError(e)
      throw e
    }
  }
  if (!data) return null
  const highlights = data.collection('highlights')
  return (
    <div className="highlights">
      <h3 className="visually-hidden">Highlights at {job.company}</h3>
      <ErrorMessage error={error} />
      <ul>
        {items?.map((h) =>
          editing === h.id ? (
            <li key={h.id}>
              <HighlightForm
                id={`${id}-${h.id}`}
                highlight={h}
                onSave={(values) => run(() => highlights.update(h.id, values))}
                onCancel={() => setEditing(undefined)}
              />
            </li>
          ) : (
            <li key={h.id} className={h.hidden ? 'hidden-highlight' : undefined}>
              <p>
                {h.content} {h.metric && <strong className="metric">{h.metric}</strong>} {h.hidden && <em>(hidden)</em>}
              </p>
              {(listText(h.skills) || listText(h.domains)) && (
                <p className="muted small">
                  {listText(h.skills) && <>Skills: {listText(h.skills)}. </>}
                  {listText(h.domains) && <>Domains: {listText(h.domains)}.</>}
                </p>
              )}
              <div className="actions">
                <button type="button" onClick={() => setEditing(h.id)} aria-label={`Edit highlight: ${h.content}`}>
                  Edit
                </button>
                <button type="button" onClick={() => run(() => highlights.delete(h.id)).catch(() => {})} aria-label={`Delete highlight: ${h.content}`}>
                  Delete
                </button>
              </div>
            </li>
          ),
        )}
      </ul>
      {editing === 'new' ? (
        <HighlightForm
          id={`${id}-new`}
          onSave={(values) => run(() => highlights.create({ ...values, job_id: job.id, position: items?.length ?? 0 }))}
          onCancel={() => setEditing(undefined)}
        />
      ) : (
        <button type="button" onClick={() => setEditing('new')} aria-label={`Add highlight to ${job.title} at ${job.company}`}>
          Add highlight
        </button>
      )}
    </div>
  )
}

function JobCard({ job, filters, version, onChange }: { job: Job; filters: Filters; version: number; onChange: () => void }) {
  const { data } = useConsole()
  const id = useId()
  const [editing, setEditing] = useState(false)
  const [error, setError] = useState<unknown>()
  if (!data) return null
  if (editing) {
    return (
      <li>
        <JobForm
          id={id}
          job={job}
          onSave={async (values) => {
            await data.collection('jobs').update(job.id, values)
            setEditing(false)
            onChange()
          }}
          onCancel={() => setEditing(false)}
        />
      </li>
    )
  }
  const remove = async () => {
    if (!confirm(`Delete ${job.title} at ${job.company} and its highlights?`)) return
    setError(undefined)
    try {
      // Highlights first: the local backend has no foreign keys to cascade.
      for (;;) {
        const page = await data.collection('highlights').list({ where: { job_id: job.id }, limit: MAX_LIMIT })
        if (!page.items.length) break
        await data.collection('highlights').bulkDelete(page.items.map((h) => h.id))
      }
      await data.collection('jobs').delete(job.id)
      onChange()
    } catch (e) {
      setError(e)
    }
  }
  return (
    <li className="card job">
      <article aria-labelledby={`${id}-title`}>
        <h2 id={`${id}-title`}>
          {job.title} <span className="muted">at</span> {job.company}
        </h2>
        <p className="muted">
          {job.start_date} – {job.end_date ?? 'now'}
          {job.location && <> · {job.location}</>}
        </p>
        {job.description && <p>{job.description}</p>}
        <div className="actions">
          <button type="button" onClick={() => setEditing(true)} aria-label={`Edit ${job.title} at ${job.company}`}>
            Edit
          </button>
          <button type="button" onClick={remove} aria-label={`Delete ${job.title} at ${job.company}`}>
            Delete
          </button>
        </div>
        <ErrorMessage error={error} />
        <Highlights job={job} filters={filters} version={version} onChange={onChange} />
      </article>
    </li>
  )
}

export function CvBuilder() {
  const { data, me, dataVersion } = useConsole()
  const [filters, setFilters] = useState<Filters>({ q: '', location: '', currentOnly: false, showHidden: false })
  const [jobs, setJobs] = useState<Job[]>()
  const [total, setTotal] = useState<number>()
  const [cursor, setCursor] = useState<string | null>(null)
  const [error, setError] = useState<unknown>()
  const [adding, setAdding] = useState(false)
  const [version, setVersion] = useState(0)
  const changed = useCallback(() => setVersion((v) => v + 1), [])

  useEffect(() => {
    if (!data) return
    let live = true
    const where = { ...(filters.location ? { location: filters.location } : {}), ...(filters.currentOnly ? { end_date: null } : {}) }
    const q = filters.q.trim() || undefined
    ;(async () => {
      const page = await data.collection('jobs').list({ where, q, limit: PAGE })
      let items = page.items
      // A search also finds the jobs whose highlights match.
      if (q) {
        const highlights = await data.collection('highlights').list({ q, limit: MAX_LIMIT, ...(filters.showHidden ? {} : { where: { hidden: false } }) })
        const more = [...new Set(highlights.items.map((h) => h.job_id))].filter((jobId) => !items.some((j) => j.id === jobId))
        const found = await Promise.all(more.map((jobId) => data.collection('jobs').get(jobId).catch(() => undefined)))
        items = [...items, ...found.filter((j): j is Job => j !== undefined && (!filters.location || j.location === filters.location) && (!filters.currentOnly || j.end_date === null))]
      }
      const count = await data.collection('jobs').count({ where })
      if (!live) return
      setJobs(items)
      setCursor(q ? null : page.nextCursor)
      setTotal(count)
      setError(undefined)
    })().catch((e) => live && setError(e))
    return () => {
      live = false
    }
  }, [data, filters, version, dataVersion])

  const loadMore = async () => {
    if (!data || !cursor) return
    try {
      const page = await data.collection('jobs').list({
        where: { ...(filters.location ? { location: filters.location } : {}), ...(filters.currentOnly ? { end_date: null } : {}) },
        limit: PAGE,
        cursor,
      })
      setJobs((current) => [...(current ?? []), ...page.items])
      setCursor(page.nextCursor)
    } catch (e) {
      setError(e)
    }
  }

  if (me && !me.activeTenant) {
    return (
      <>
        <h1 tabIndex={-1}>CV builder</h1>
        <p>Choose a workspace in the header to see its data.</p>
      </>
    )
  }
  return (
    <>
      <div className="title-row">
        <h1 tabIndex={-1}>CV builder</h1>
        <StorageBadge />
      </div>
      <form role="search" className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Search and filter jobs">
        <p className="field">
          <label htmlFor="search">Search</label>
          <input id="search" type="search" value={filters.q} maxLength={200} onChange={(e) => setFilters({ ...filters, q: e.target.value })} placeholder="Company, title, highlight…" />
        </p>
        <p className="field">
          <label htmlFor="filter-location">Location</label>
          <input id="filter-location" value={filters.location} onChange={(e) => setFilters({ ...filters, location: e.target.value })} />
        </p>
        <p className="field checkbox">
          <input id="filter-current" type="checkbox" checked={filters.currentOnly} onChange={(e) => setFilters({ ...filters, currentOnly: e.target.checked })} />
          <label htmlFor="filter-current">Current roles only</label>
        </p>
        <p className="field checkbox">
          <input id="filter-hidden" type="checkbox" checked={filters.showHidden} onChange={(e) => setFilters({ ...filters, showHidden: e.target.checked })} />
          <label htmlFor="filter-hidden">Show hidden highlights</label>
        </p>
      </form>
      <ErrorMessage error={error} />
      {adding ? (
        <JobForm
          id="new-job"
          onSave={async (values) => {
            if (!data) return
            await data.collection('jobs').create(values)
            setAdding(false)
            changed()
          }}
          onCancel={() => setAdding(false)}
        />
      ) : (
        <button type="button" className="primary" onClick={() => setAdding(true)}>
          Add job
        </button>
      )}
      <p className="muted" aria-live="polite">
        {jobs === undefined ? 'Loading…' : filters.q.trim() ? `${jobs.length} found` : `${jobs.length} of ${total ?? jobs.length} jobs`}
      </p>
      <ul className="jobs">
        {jobs?.map((job) => (
          <JobCard key={job.id} job={job} filters={filters} version={version} onChange={changed} />
        ))}
      </ul>
      {cursor && (
        <button type="button" onClick={loadMore}>
          Load more jobs
        </button>
      )}
    </>
  )
}
