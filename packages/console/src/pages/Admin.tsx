import { useCallback, useEffect, useState, type FormEvent } from 'react'
import type { AdminTenant, AuditEntry, DataSource, Isolation, TenantUsage } from '@tenantry/client'
import { admin } from '../api.js'
import { BarChart } from '../components/BarChart.js'
import { ErrorMessage } from '../components/ErrorMessage.js'
import { useConsole } from '../session.js'

/**
 * The operator's admin (platform admins): every tenant with its status, isolation, data source
 * and size; create, suspend, resume and delete. Each action answers with the tenant's new
 * state, and a refusal shows the API's message.
 */

/** A tenant's audit log, newest last, as the catalog keeps it. */
function AuditLog({ slug }: { slug: string }) {
  const [entries, setEntries] = useState<AuditEntry[]>()
  const [error, setError] = useState<unknown>()
  useEffect(() => {
    admin.tenants.get(slug).then((t) => setEntries(t.auditLog), setError)
  }, [slug])
  if (error) return <ErrorMessage error={error} />
  if (!entries) return <p className="muted">Loading…</p>
  return (
    <ol className="audit" aria-label={`Audit log of ${slug}`}>
      {entries.map((e, i) => (
        <li key={i}>
          <time dateTime={e.at}>{new Date(e.at).toLocaleString()}</time> <strong>{e.action}</strong> by {e.actor}
        </li>
      ))}
    </ol>
  )
}

/** What a tenant's usage charts show, one chart each: metered per UTC day (usage/usage-meter.ts). */
const USAGE_METRICS = [
  { key: 'requests', label: 'Requests', color: '#0b5cad' },
  { key: 'statements', label: 'Statements', color: '#6f42c1' },
  { key: 'rowsRead', label: 'Rows read', color: '#1a7f37' },
  { key: 'rowsWritten', label: 'Rows written', color: '#b35900' },
] as const

/** A tenant's metered usage over the last 30 days, as charts: one bar per day with usage. */
function UsageCharts({ slug }: { slug: string }) {
  const [usage, setUsage] = useState<TenantUsage>()
  const [error, setError] = useState<unknown>()
  useEffect(() => {
    admin.tenants.usage(slug, { days: 30 }).then(setUsage, setError)
  }, [slug])
  if (error) return <ErrorMessage error={error} />
  if (!usage) return <p className="muted">Loading…</p>
  if (usage.days.length === 0) return <p className="muted">No usage metered for {slug} in the last 30 days.</p>
  return (
    <section aria-label={`Usage of ${slug}`} className="chart-grid">
      {USAGE_METRICS.map((m) => {
        const total = usage.days.reduce((sum, d) => sum + d[m.key], 0)
        const busiest = usage.days.reduce((a, b) => (b[m.key] > a[m.key] ? b : a))
        return (
          <BarChart
            key={m.key}
            title={`${m.label} per day of ${slug}`}
            summary={`${total} ${m.label.toLowerCase()} over ${usage.days.length} day${usage.days.length === 1 ? '' : 's'} with usage; most on ${busiest.day} (${busiest[m.key]}).`}
            category="Day"
            series={[m]}
            bars={usage.days.map((d) => ({ label: d.day.slice(5), values: { [m.key]: d[m.key] } }))}
          />
        )
      })}
    </section>
  )
}

const size = (bytes: number | null | undefined) =>
  bytes === undefined ? '…' : bytes === null ? 'n/a' : bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`

export function Admin() {
  const { me } = useConsole()
  const [tenants, setTenants] = useState<AdminTenant[]>()
  const [sizes, setSizes] = useState<Record<string, number | null>>({})
  const [sources, setSources] = useState<DataSource[]>([])
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState<string>()
  const [notice, setNotice] = useState('')
  const [audited, setAudited] = useState<string>()
  const [charted, setCharted] = useState<string>()

  const load = useCallback(async () => {
    try {
      const list = await admin.tenants.list()
      setTenants(list)
      // Sizes one by one, after the list shows: measuring can take a moment per tenant.
      for (const t of list.filter((t) => t.status !== 'deleted').slice(0, 100)) {
        admin.tenants.usage(t.slug, { days: 1 }).then(
          (u) => setSizes((s) => ({ ...s, [t.slug]: u.storageBytes })),
          () => setSizes((s) => ({ ...s, [t.slug]: null })),
        )
      }
    } catch (e) {
      setError(e)
    }
  }, [])
  useEffect(() => {
    if (!me?.user.platformAdmin) return
    void load()
    admin.dataSources.list().then(setSources, setError)
  }, [load, me?.user.platformAdmin])

  const act = async (label: string, slug: string, run: () => Promise<AdminTenant>) => {
    setBusy(slug)
    setError(undefined)
    setNotice('')
    try {
      const after = await run()
      setNotice(`${label} ${after.slug}: now ${after.status}`)
      await load()
    } catch (e) {
      setError(e)
    } finally {
      setBusy(undefined)
    }
  }

  const create = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    const form = new FormData(event.currentTarget)
    const slug = String(form.get('slug') ?? '').trim()
    const name = String(form.get('name') ?? '').trim()
    const isolation = String(form.get('isolation') ?? '')
    const dataSource = String(form.get('dataSource') ?? '')
    const ownerEmail = String(form.get('ownerEmail') ?? '').trim()
    await act('Created', slug, () =>
      admin.tenants.create({
        slug,
        ...(name ? { name } : {}),
        ...(isolation ? { isolation: isolation as Isolation } : {}),
        ...(dataSource ? { dataSource } : {}),
        ...(ownerEmail ? { ownerEmail } : {}),
      }),
    )
  }

  return (
    <>
      <h1 tabIndex={-1}>Admin: tenants</h1>
      <form onSubmit={create} className="card form-grid" aria-label="Create a tenant">
        <p className="field">
          <label htmlFor="tenant-slug">Slug</label>
          <input id="tenant-slug" name="slug" required pattern="[a-z][a-z0-9_]{1,62}" title="a lower-case letter, then 1 to 62 lower-case letters, digits or _" />
        </p>
        <p className="field">
          <label htmlFor="tenant-name">Name</label>
          <input id="tenant-name" name="name" maxLength={200} />
        </p>
        <p className="field">
          <label htmlFor="tenant-isolation">Isolation</label>
          <select id="tenant-isolation" name="isolation" defaultValue="">
            <option value="">Default</option>
            <option value="database">database</option>
            <option value="schema">schema</option>
            <option value="row">row</option>
          </select>
        </p>
        <p className="field">
          <label htmlFor="tenant-source">Data source</label>
          <select id="tenant-source" name="dataSource" defaultValue="">
            <option value="">Default</option>
            {sources.map((s) => (
              <option key={s.id} value={s.id}>
                {s.id} ({s.engine}, {s.mode})
              </option>
            ))}
          </select>
        </p>
        <p className="field">
          <label htmlFor="tenant-owner">Owner's email (optional)</label>
          <input id="tenant-owner" name="ownerEmail" type="email" />
        </p>
        <div className="actions wide">
          <button type="submit" className="primary" disabled={busy !== undefined}>
            Create tenant
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
      <p role="status" className="muted">
        {notice}
      </p>
      {tenants === undefined ? (
        <p className="muted">Loading…</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Tenants</caption>
            <thead>
              <tr>
                <th scope="col">Tenant</th>
                <th scope="col">Status</th>
                <th scope="col">Isolation</th>
                <th scope="col">Data source</th>
                <th scope="col">Size</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tenants.map((t) => [
                <tr key={t.id} data-slug={t.slug}>
                  <th scope="row">
                    {t.name} <span className="muted">({t.slug})</span>
                  </th>
                  <td>
                    <span className={`status status-${t.status}`}>{t.status}</span>
                    {t.statusReason && <span className="muted small"> {t.statusReason}</span>}
                  </td>
                  <td>{t.placement.isolation}</td>
                  <td>{t.placement.dataSourceId}</td>
                  <td>{t.status === 'deleted' ? '—' : size(sizes[t.slug])}</td>
                  <td className="actions">
                    {t.status === 'ready' && (
                      <button type="button" disabled={busy === t.slug} aria-label={`Suspend ${t.slug}`} onClick={() => act('Suspended', t.slug, () => admin.tenants.suspend(t.slug))}>
                        Suspend
                      </button>
                    )}
                    {t.status === 'suspended' && (
                      <button type="button" disabled={busy === t.slug} aria-label={`Resume ${t.slug}`} onClick={() => act('Resumed', t.slug, () => admin.tenants.resume(t.slug))}>
                        Resume
                      </button>
                    )}
                    {t.status !== 'deleted' && (
                      <button
                        type="button"
                        className="danger"
                        disabled={busy === t.slug}
                        aria-label={`Delete ${t.slug}`}
                        onClick={() => {
                          if (confirm(`Delete the tenant ${t.slug}? Its data is kept, and it is no longer served.`)) void act('Deleted', t.slug, () => admin.tenants.delete(t.slug))
                        }}
                      >
                        Delete
                      </button>
                    )}
                    <button type="button" aria-expanded={audited === t.slug} aria-label={`Audit log of ${t.slug}`} onClick={() => setAudited(audited === t.slug ? undefined : t.slug)}>
                      Audit log
                    </button>
                    <button type="button" aria-expanded={charted === t.slug} aria-label={`Usage of ${t.slug}`} onClick={() => setCharted(charted === t.slug ? undefined : t.slug)}>
                      Usage
                    </button>
                  </td>
                </tr>,
                audited === t.slug && (
                  <tr key={`${t.id}-audit`}>
                    <td colSpan={6}>
                      <AuditLog slug={t.slug} />
                    </td>
                  </tr>
                ),
                charted === t.slug && (
                  <tr key={`${t.id}-usage`}>
                    <td colSpan={6}>
                      <UsageCharts slug={t.slug} />
                    </td>
                  </tr>
                ),
              ])}
            </tbody>
          </table>
        </div>
      )}
    </>
  )
}
