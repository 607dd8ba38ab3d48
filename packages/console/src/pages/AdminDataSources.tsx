import { useEffect, useState } from 'react'
import { api } from '../api.js'
import { ErrorMessage } from '../components/ErrorMessage.js'

/** Admin → Data sources: where tenants' data lives (engine, mode, capacity, region); never a secret. */

interface DataSource {
  id: string
  engine: string
  mode: string
  capacity: number | null
  region: string | null
  createdAt: string
}

export function AdminDataSources() {
  const [sources, setSources] = useState<DataSource[]>()
  const [error, setError] = useState<unknown>()
  useEffect(() => {
    api<{ dataSources: DataSource[] }>('GET', '/api/admin/data-sources').then((r) => setSources(r.dataSources), setError)
  }, [])
  return (
    <>
      <h1 tabIndex={-1}>Admin: data sources</h1>
      <ErrorMessage error={error} />
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
                <th scope="col">Capacity</th>
                <th scope="col">Region</th>
                <th scope="col">Added</th>
              </tr>
            </thead>
            <tbody>
              {sources.map((s) => (
                <tr key={s.id}>
                  <th scope="row">{s.id}</th>
                  <td>{s.engine}</td>
                  <td>{s.mode}</td>
                  <td>{s.capacity ?? 'unlimited'}</td>
                  <td>{s.region ?? '—'}</td>
                  <td>{new Date(s.createdAt).toLocaleDateString()}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p className="muted">Add one with <code>tenantry data-source add</code>.</p>
    </>
  )
}
