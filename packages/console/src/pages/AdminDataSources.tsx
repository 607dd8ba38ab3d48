import { useCallback, useEffect, useState, type FormEvent } from 'react'
import type { AddDataSourceInput, DataSource, DataSourceMode, DataSourceTest } from '@tenantry/client'
import { admin } from '../api.js'
import { describeError, ErrorMessage } from '../components/ErrorMessage.js'

/**
 * Admin → Data sources: where tenants' data lives, with the tenants on each against its
 * capacity; add one (tested by the server before it is recorded), test one, change its
 * capacity. A Postgres URL is typed into a password field, sent once, sealed by the server and
 * never shown again: the list only says whether credentials are recorded.
 */

type Answer = { ok: boolean; text: string }

const ISOLATIONS = ['schema', 'database', 'row'] as const

function AddDataSource({ onAdded }: { onAdded: (source: DataSource) => void }) {
  const [engine, setEngine] = useState<'sqlite' | 'postgres'>('sqlite')
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    const formElement = event.currentTarget
    const form = new FormData(formElement)
    const text = (name: string) => String(form.get(name) ?? '').trim()
    const capacity = text('capacity')
    const isolations = ISOLATIONS.filter((i) => form.get(`isolation-${i}`) === 'on')
    const common = {
      id: text('id'),
      ...(text('mode') ? { mode: text('mode') as DataSourceMode } : {}),
      ...(capacity ? { capacity: Number(capacity) } : {}),
      ...(text('region') ? { region: text('region') } : {}),
    }
    const body: AddDataSourceInput =
      engine === 'sqlite'
        ? { ...common, engine, ...(text('directory') ? { directory: text('directory') } : {}) }
        : // The URL as typed (a password may end in spaces): never trimmed, never kept in state.
          { ...common, engine, url: String(form.get('url') ?? ''), ...(isolations.length < ISOLATIONS.length ? { isolations: [...isolations] } : {}) }
    setBusy(true)
    setError(undefined)
    try {
      const added = await admin.dataSources.add(body)
      formElement.reset()
      setEngine('sqlite')
      onAdded(added)
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }

  return (
    <section aria-labelledby="add-title">
      <h2 id="add-title">Add a data source</h2>
      <form onSubmit={submit} className="card form-grid" aria-label="Add a data source">
        <p className="field">
          <label htmlFor="ds-id">Id</label>
          <input id="ds-id" name="id" required pattern="[a-z][a-z0-9_]{0,62}" aria-describedby="ds-id-hint" autoComplete="off" />
          <span id="ds-id-hint" className="muted small">
            a-z, 0-9 and _, starting with a letter
          </span>
        </p>
        <p className="field">
          <label htmlFor="ds-engine">Engine</label>
          <select id="ds-engine" name="engine" value={engine} onChange={(e) => setEngine(e.target.value as 'sqlite' | 'postgres')}>
            <option value="sqlite">SQLite (files on this server)</option>
            <option value="postgres">PostgreSQL</option>
          </select>
        </p>
        {engine === 'sqlite' ? (
          <p className="field wide">
            <label htmlFor="ds-directory">Directory</label>
            <input id="ds-directory" name="directory" placeholder="/srv/tenantry/tenants" aria-describedby="ds-directory-hint" autoComplete="off" />
            <span id="ds-directory-hint" className="muted small">
              An absolute path on the server; empty: a directory named after the id in Tenantry's home.
            </span>
          </p>
        ) : (
          <>
            <p className="field wide">
              <label htmlFor="ds-url">Connection URL</label>
              <input
                id="ds-url"
                name="url"
                type="password"
                required
                autoComplete="off"
                spellCheck={false}
                placeholder="postgres://user:password@host:5432/database"
                aria-describedby="ds-url-hint"
              />
              <span id="ds-url-hint" className="muted small">
                An admin login: sealed by the server and never shown again.
              </span>
            </p>
            <fieldset className="field wide">
              <legend>Isolations offered</legend>
              {ISOLATIONS.map((i) => (
                <p className="checkbox" key={i}>
                  <input type="checkbox" id={`ds-isolation-${i}`} name={`isolation-${i}`} defaultChecked />
                  <label htmlFor={`ds-isolation-${i}`}>{i}</label>
                </p>
              ))}
            </fieldset>
          </>
        )}
        <p className="field">
          <label htmlFor="ds-mode">Mode</label>
          <select id="ds-mode" name="mode" defaultValue="shared">
            <option value="shared">shared (takes new tenants)</option>
            <option value="dedicated">dedicated (only when named)</option>
            <option value="byod">byod (a customer's own)</option>
          </select>
        </p>
        <p className="field">
          <label htmlFor="ds-capacity">Capacity (tenants)</label>
          <input id="ds-capacity" name="capacity" type="number" min={1} step={1} placeholder="unlimited" />
        </p>
        <p className="field">
          <label htmlFor="ds-region">Region</label>
          <input id="ds-region" name="region" maxLength={100} />
        </p>
        <div className="actions wide">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Testing and adding…' : 'Add data source'}
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
    </section>
  )
}

/** The tenants on a source against its capacity: a labelled meter where there is a capacity. */
function Load({ source }: { source: DataSource }) {
  if (source.capacity === null) return <>{source.tenants} (no limit)</>
  return (
    <span className="load">
      <meter min={0} max={source.capacity} high={Math.max(1, Math.floor(source.capacity * 0.9))} value={source.tenants} aria-label={`Tenants on ${source.id}: ${source.tenants} of ${source.capacity}`} />{' '}
      {source.tenants} / {source.capacity}
    </span>
  )
}

function CapacityEditor({ source, onSaved, onCancel }: { source: DataSource; onSaved: (s: DataSource) => void; onCancel: () => void }) {
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const save = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    const value = String(new FormData(event.currentTarget).get('capacity') ?? '').trim()
    setBusy(true)
    setError(undefined)
    try {
      onSaved(await admin.dataSources.update(source.id, { capacity: value ? Number(value) : null }))
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }
  return (
    <form onSubmit={save} className="inline-form" aria-label={`Capacity of ${source.id}`}>
      <label htmlFor={`cap-${source.id}`}>New capacity of {source.id} (empty: unlimited)</label>
      <input id={`cap-${source.id}`} name="capacity" type="number" min={1} step={1} defaultValue={source.capacity ?? ''} />
      <button type="submit" disabled={busy}>
        Save
      </button>
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      <ErrorMessage error={error} />
    </form>
  )
}

export function AdminDataSources() {
  const [sources, setSources] = useState<DataSource[]>()
  const [error, setError] = useState<unknown>()
  const [notice, setNotice] = useState('')
  const [answers, setAnswers] = useState<Record<string, Answer>>({})
  const [testing, setTesting] = useState<string>()
  const [editing, setEditing] = useState<string>()

  const load = useCallback(async () => {
    try {
      setSources(await admin.dataSources.list())
    } catch (e) {
      setError(e)
    }
  }, [])
  useEffect(() => {
    void load()
  }, [load])

  const test = async (id: string) => {
    setTesting(id)
    try {
      const result: DataSourceTest = await admin.dataSources.test(id)
      setAnswers((a) => ({ ...a, [id]: { ok: true, text: `Answered in ${result.latencyMs} ms: ${result.detail}` } }))
    } catch (e) {
      setAnswers((a) => ({ ...a, [id]: { ok: false, text: describeError(e) } }))
    } finally {
      setTesting(undefined)
    }
  }

  return (
    <>
      <h1 tabIndex={-1}>Admin: data sources</h1>
      <ErrorMessage error={error} />
      <p role="status" className="muted">
        {notice}
      </p>
      {sources === undefined ? (
        !error && <p className="muted">Loading…</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Data sources</caption>
            <thead>
              <tr>
                <th scope="col">Id</th>
                <th scope="col">Engine</th>
                <th scope="col">Mode</th>
                <th scope="col">Location</th>
                <th scope="col">Tenants / capacity</th>
                <th scope="col">Region</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {sources.map((s) => (
                <tr key={s.id} data-id={s.id}>
                  <th scope="row">{s.id}</th>
                  <td>{s.engine}</td>
                  <td>{s.mode}</td>
                  <td>
                    <code className="location">{s.location}</code>
                    {s.hasCredentials && <span className="muted small"> (credentials sealed)</span>}
                  </td>
                  <td className="tenants">
                    <Load source={s} />
                    {editing === s.id && (
                      <CapacityEditor
                        source={s}
                        onCancel={() => setEditing(undefined)}
                        onSaved={(updated) => {
                          setSources((all) => all?.map((x) => (x.id === updated.id ? updated : x)))
                          setEditing(undefined)
                          setNotice(`Capacity of ${updated.id}: ${updated.capacity ?? 'unlimited'}.`)
                        }}
                      />
                    )}
                  </td>
                  <td>{s.region ?? '—'}</td>
                  <td>
                    <div className="actions">
                      <button type="button" aria-label={`Test ${s.id}`} disabled={testing === s.id} onClick={() => test(s.id)}>
                        {testing === s.id ? 'Testing…' : 'Test'}
                      </button>
                      {s.declaredInConfig ? (
                        <span className="muted small">capacity: in the config file</span>
                      ) : (
                        editing !== s.id && (
                          <button type="button" aria-label={`Change capacity of ${s.id}`} onClick={() => setEditing(s.id)}>
                            Change capacity
                          </button>
                        )
                      )}
                    </div>
                    <span role="status" className={answers[s.id]?.ok === false ? 'error-inline small' : 'small'} aria-label={`Test of ${s.id}`}>
                      {answers[s.id]?.text}
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <AddDataSource
        onAdded={(added) => {
          setNotice(`Added data source ${added.id} (${added.engine}) at ${added.location}.`)
          void load()
        }}
      />
    </>
  )
}
