import { useCallback, useEffect, useRef, useState } from 'react'
import type { MigrationRun, MigrationStatus } from '@tenantry/client'
import { admin } from '../api.js'
import { BarChart } from '../components/BarChart.js'
import { ErrorMessage } from '../components/ErrorMessage.js'

/**
 * Admin → Migrations: each tenant migration with how many tenants have it and how many are
 * behind, the tenants behind, and a run of the fan-out with its progress per tenant (polled
 * from `GET /api/admin/migrations/run` while the run's own request is open) and its errors.
 */

/** Where a run stands: tenants migrated, failed and still to do. */
interface Snapshot {
  run: string
  /** Seconds since the run started. */
  at: number
  migrated: number
  failed: number
  pending: number
}

const FANOUT_SERIES = [
  { key: 'migrated', label: 'Migrated', color: '#1a7f37' },
  { key: 'failed', label: 'Failed', color: '#a4161a' },
  { key: 'pending', label: 'Pending', color: '#8c959f' },
]

function snapshotOf(run: MigrationRun): Snapshot {
  const failed = run.results.filter((r) => r.status === 'error').length
  const done = run.report ? run.report.succeeded + run.report.failed : run.done
  const total = run.total ?? (run.report ? run.report.total - run.report.upToDate : done)
  const end = run.finishedAt ? Date.parse(run.finishedAt) : Date.now()
  return { run: run.id, at: Math.max(0, Math.round((end - Date.parse(run.startedAt)) / 100) / 10), migrated: done - failed, failed, pending: Math.max(0, total - done) }
}

/** The run's progress over time: a bar per poll while the page watched it, or its end state. */
function FanOutChart({ snapshots }: { snapshots: Snapshot[] }) {
  const last = snapshots.at(-1)
  if (!last) return null
  return (
    <BarChart
      title="Fan-out progress"
      summary={`${last.migrated} migrated, ${last.failed} failed, ${last.pending} pending after ${last.at} s${snapshots.length > 1 ? `, over ${snapshots.length} readings` : ''}.`}
      category="Seconds since start"
      series={FANOUT_SERIES}
      bars={snapshots.map((s, i) => ({ label: `${s.at} s${snapshots.findIndex((o) => o.at === s.at) === i ? '' : ` (${i + 1})`}`, values: { migrated: s.migrated, failed: s.failed, pending: s.pending } }))}
    />
  )
}

export function AdminMigrations() {
  const [status, setStatus] = useState<MigrationStatus>()
  const [run, setRun] = useState<MigrationRun | null>()
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const [snapshots, setSnapshots] = useState<Snapshot[]>([])
  /** A run's state, and a reading for the progress chart when it moved (or changed run). */
  const track = useCallback((r: MigrationRun | null) => {
    setRun(r)
    if (!r) return
    const next = snapshotOf(r)
    setSnapshots((list) => {
      const prev = list.at(-1)
      if (prev && prev.run !== next.run) return [next]
      if (prev && prev.migrated === next.migrated && prev.failed === next.failed && prev.pending === next.pending && prev.at <= next.at) return list
      return [...list, next]
    })
  }, [])
  const polling = useRef<ReturnType<typeof setInterval>>(undefined)

  const load = useCallback(async () => {
    try {
      const [s, r] = await Promise.all([admin.migrations.status(), admin.migrations.progress()])
      setStatus(s)
      track(r)
    } catch (e) {
      setError(e)
    }
  }, [track])
  useEffect(() => {
    void load()
    return () => clearInterval(polling.current)
  }, [load])

  const start = async () => {
    setBusy(true)
    setError(undefined)
    setSnapshots([])
    // Progress while the run's request is open: what each tenant has done so far.
    polling.current = setInterval(() => {
      admin.migrations.progress().then(track, () => {})
    }, 500)
    try {
      await admin.migrations.run()
    } catch (e) {
      setError(e)
    } finally {
      clearInterval(polling.current)
      setBusy(false)
      await load()
    }
  }

  // The run's own count of the tenants behind once it has one; until then the status page's.
  const total = run?.total ?? (status ? status.behind.length : 0)
  return (
    <>
      <h1 tabIndex={-1}>Admin: migrations</h1>
      <ErrorMessage error={error} />
      {status === undefined ? (
        <p className="muted">Loading…</p>
      ) : (
        <>
          <p>
            {status.tenants} tenants; {status.behind.length === 0 ? 'all up to date.' : `${status.behind.length} behind.`}
            {status.lock && (
              <>
                {' '}
                A runner holds the lock: pid {status.lock.pid} on {status.lock.host} since {new Date(status.lock.since).toLocaleString()}.
              </>
            )}
          </p>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Tenant migrations</caption>
              <thead>
                <tr>
                  <th scope="col">Migration</th>
                  <th scope="col">Applied</th>
                  <th scope="col">Pending</th>
                </tr>
              </thead>
              <tbody>
                {status.migrations.map((m) => (
                  <tr key={m.name}>
                    <th scope="row">
                      <code>{m.name}</code>
                    </th>
                    <td>{m.appliedTenants}</td>
                    <td>{m.pendingTenants}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {status.behind.length > 0 && (
            <>
              <h2>Tenants behind</h2>
              <ul>
                {status.behind.slice(0, 100).map((b) => (
                  <li key={b.tenantId}>
                    {b.slug} ({b.status}): {b.pending.join(', ')}
                  </li>
                ))}
              </ul>
            </>
          )}
          <button type="button" className="primary run" onClick={start} disabled={busy}>
            Run migrations
          </button>
        </>
      )}
      {run && (
        <section aria-labelledby="run-title" className="card">
          <h2 id="run-title">{run.running ? 'Running…' : `Last run, ${new Date(run.startedAt).toLocaleString()}`}</h2>
          <p aria-live="polite">
            {run.report
              ? `${run.report.total} tenants: ${run.report.upToDate} up to date, ${run.report.succeeded} migrated, ${run.report.failed} failed (${Math.round(run.report.durationMs)} ms).`
              : `${run.done} tenant${run.done === 1 ? '' : 's'} done${total ? ` of ${total}` : ''}; ${run.results.filter((r) => r.status === 'error').length} failed.`}
          </p>
          {run.running && <progress aria-label="Tenants migrated" max={total || undefined} value={total ? run.done : undefined} />}
          {run.error && <p className="error">{run.error}</p>}
          <FanOutChart snapshots={snapshots} />
          {run.results.length > 0 && (
            <ul>
              {run.results.map((r) => (
                <li key={r.tenantId}>
                  {r.slug}: {r.status}
                  {r.applied.length > 0 && <> ({r.applied.join(', ')})</>}
                  {r.error && <span className="error-inline"> {r.error}</span>}
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
    </>
  )
}
