import { useState, type FormEvent } from 'react'
import type { RowOf } from '@tenantry/client'
import { ErrorMessage } from '../components/ErrorMessage.js'
import type { Collections } from '../session.js'

/** The CV builder's two forms: a job, a highlight. Each validates in the browser only what the input types do; the rest is the data layer's (same rules locally and on the server). */

export type Job = RowOf<Collections['jobs']>
export type Highlight = RowOf<Collections['highlights']>

export type JobInput = { company: string; title: string; location: string | null; start_date: string; end_date: string | null; description: string | null }
export type HighlightInput = { content: string; skills: string; domains: string; metric: string | null; hidden: boolean }

/** `["a","b"]` (how the table keeps skills and domains) as `a, b`, and back. */
export const listText = (json: string | null | undefined): string => {
  try {
    const value: unknown = JSON.parse(json ?? '[]')
    return Array.isArray(value) ? value.join(', ') : ''
  } catch {
    return json ?? ''
  }
}
export const listJson = (text: string): string =>
  JSON.stringify(
    text
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  )

const orNull = (value: FormDataEntryValue | null) => (value === null || String(value).trim() === '' ? null : String(value).trim())

function useSubmit<T>(read: (form: FormData) => T, save: (values: T) => Promise<void>) {
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const onSubmit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      await save(read(new FormData(event.currentTarget)))
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }
  return { error, busy, onSubmit }
}

export function JobForm(props: { id: string; job?: Job; onSave: (values: JobInput) => Promise<void>; onCancel?: () => void }) {
  const { id, job } = props
  const { error, busy, onSubmit } = useSubmit(
    (form) => ({
      company: String(form.get('company') ?? '').trim(),
      title: String(form.get('title') ?? '').trim(),
      location: orNull(form.get('location')),
      start_date: String(form.get('start_date') ?? ''),
      end_date: orNull(form.get('end_date')),
      description: orNull(form.get('description')),
    }),
    props.onSave,
  )
  return (
    <form onSubmit={onSubmit} className="card form-grid" aria-label={job ? `Edit ${job.title} at ${job.company}` : 'New job'}>
      <p className="field">
        <label htmlFor={`${id}-company`}>Company</label>
        <input id={`${id}-company`} name="company" defaultValue={job?.company} required maxLength={200} />
      </p>
      <p className="field">
        <label htmlFor={`${id}-title`}>Title</label>
        <input id={`${id}-title`} name="title" defaultValue={job?.title} required maxLength={200} />
      </p>
      <p className="field">
        <label htmlFor={`${id}-location`}>Location</label>
        <input id={`${id}-location`} name="location" defaultValue={job?.location ?? ''} maxLength={200} />
      </p>
      <p className="field">
        <label htmlFor={`${id}-start`}>Start date</label>
        <input id={`${id}-start`} name="start_date" type="date" defaultValue={job?.start_date} required />
      </p>
      <p className="field">
        <label htmlFor={`${id}-end`}>End date (empty: current)</label>
        <input id={`${id}-end`} name="end_date" type="date" defaultValue={job?.end_date ?? ''} />
      </p>
      <p className="field wide">
        <label htmlFor={`${id}-description`}>Description</label>
        <textarea id={`${id}-description`} name="description" defaultValue={job?.description ?? ''} rows={3} />
      </p>
      <div className="wide">
        <ErrorMessage error={error} />
      </div>
      <div className="actions wide">
        <button type="submit" className="primary" disabled={busy}>
          {job ? 'Save job' : 'Add job'}
        </button>
        {props.onCancel && (
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
        )}
      </div>
    </form>
  )
}

export function HighlightForm(props: { id: string; highlight?: Highlight; onSave: (values: HighlightInput) => Promise<void>; onCancel?: () => void }) {
  const { id, highlight } = props
  const { error, busy, onSubmit } = useSubmit(
    (form) => ({
      content: String(form.get('content') ?? '').trim(),
      skills: listJson(String(form.get('skills') ?? '')),
      domains: listJson(String(form.get('domains') ?? '')),
      metric: orNull(form.get('metric')),
      hidden: form.get('hidden') === 'on',
    }),
    props.onSave,
  )
  return (
    <form onSubmit={onSubmit} className="form-grid highlight-form" aria-label={highlight ? 'Edit highlight' : 'New highlight'}>
      <p className="field wide">
        <label htmlFor={`${id}-content`}>Highlight</label>
        <textarea id={`${id}-content`} name="content" defaultValue={highlight?.content} required rows={2} />
      </p>
      <p className="field">
        <label htmlFor={`${id}-skills`}>Skills (comma-separated)</label>
        <input id={`${id}-skills`} name="skills" defaultValue={listText(highlight?.skills)} />
      </p>
      <p className="field">
        <label htmlFor={`${id}-domains`}>Domains (comma-separated)</label>
        <input id={`${id}-domains`} name="domains" defaultValue={listText(highlight?.domains)} />
      </p>
      <p className="field">
        <label htmlFor={`${id}-metric`}>Metric</label>
        <input id={`${id}-metric`} name="metric" defaultValue={highlight?.metric ?? ''} />
      </p>
      <p className="field checkbox">
        <input id={`${id}-hidden`} name="hidden" type="checkbox" defaultChecked={highlight?.hidden === true} />
        <label htmlFor={`${id}-hidden`}>Hidden</label>
      </p>
      <div className="wide">
        <ErrorMessage error={error} />
      </div>
      <div className="actions wide">
        <button type="submit" className="primary" disabled={busy}>
          {highlight ? 'Save highlight' : 'Add highlight'}
        </button>
        {props.onCancel && (
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
        )}
      </div>
    </form>
  )
}
