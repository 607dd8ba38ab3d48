import { useCallback, useEffect, useState, type FormEvent } from 'react'
import { api } from '../api.js'
import { CopyField } from '../components/CopyField.js'
import { ErrorMessage } from '../components/ErrorMessage.js'
import { Link } from '../router.js'
import { useConsole } from '../session.js'

/**
 * Settings: the account, and the active workspace's integrations (seed 000's n8n case): create
 * a read-only or read-write token, shown once with the SQL-over-HTTP URL, copy buttons and
 * snippets for `@libsql/client` and an n8n HTTP Request node; the token list with last use and
 * revoke.
 */

interface TokenRecord {
  id: string
  name: string
  prefix: string
  readOnly: boolean
  createdAt: string
  expiresAt: string | null
  revokedAt: string | null
  lastUsedAt: string | null
}

interface CreatedToken {
  token: string
  record: TokenRecord
  sqlUrl: string
}

const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : '—')

export const libsqlSnippet = (url: string, token: string) => `import { createClient } from '@libsql/client'

const db = createClient({
  url: '${url}',
  authToken: '${token}',
})
const { rows } = await db.execute('select company, title from jobs')`

export const n8nSnippet = (url: string, token: string) =>
  JSON.stringify(
    {
      method: 'POST',
      url: `${url.replace(/\/+$/, '')}/v2/pipeline`,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: { requests: [{ type: 'execute', stmt: { sql: 'select company, title from jobs' } }, { type: 'close' }] },
    },
    null,
    2,
  )

function Integrations({ slug }: { slug: string }) {
  const [tokens, setTokens] = useState<TokenRecord[]>()
  const [created, setCreated] = useState<CreatedToken>()
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const base = `/api/t/${encodeURIComponent(slug)}/tokens`

  const load = useCallback(async () => {
    try {
      setTokens((await api<{ items: TokenRecord[] }>('GET', base)).items)
    } catch (e) {
      setError(e)
    }
  }, [base])
  useEffect(() => {
    setCreated(undefined)
    setTokens(undefined)
    setError(undefined)
    void load()
  }, [load])

  const create = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    const form = new FormData(event.currentTarget)
    const expiresIn = String(form.get('expires') ?? '')
    setBusy(true)
    setError(undefined)
    try {
      const result = await api<CreatedToken>('POST', base, {
        name: String(form.get('name') ?? '').trim() || 'n8n',
        readOnly: form.get('access') !== 'read-write',
        ...(expiresIn ? { expiresIn } : {}),
      })
      setCreated(result)
      await load()
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }

  const revoke = async (token: TokenRecord) => {
    if (!confirm(`Revoke the token "${token.name}"? Anything using it stops working.`)) return
    setError(undefined)
    try {
      await api('DELETE', `${base}/${encodeURIComponent(token.id)}`)
      await load()
    } catch (e) {
      setError(e)
    }
  }

  return (
    <section aria-labelledby="integrations">
      <h2 id="integrations">Integrations</h2>
      <p>
        A token lets a tool outside the browser (n8n, a script, drizzle) read, or change, this workspace's data with SQL over HTTP. Anyone holding it can do
        so: keep it secret.
      </p>
      <form onSubmit={create} className="card form-grid" aria-label="Create a token">
        <p className="field">
          <label htmlFor="token-name">Token name</label>
          <input id="token-name" name="name" defaultValue="n8n" maxLength={100} />
        </p>
        <fieldset className="field">
          <legend>Access</legend>
          <p className="checkbox">
            <input type="radio" id="access-ro" name="access" value="read-only" defaultChecked />
            <label htmlFor="access-ro">Read-only</label>
          </p>
          <p className="checkbox">
            <input type="radio" id="access-rw" name="access" value="read-write" />
            <label htmlFor="access-rw">Read and write</label>
          </p>
        </fieldset>
        <p className="field">
          <label htmlFor="token-expires">Expires</label>
          <select id="token-expires" name="expires" defaultValue="">
            <option value="">Never (until revoked)</option>
            <option value="30d">In 30 days</option>
            <option value="90d">In 90 days</option>
          </select>
        </p>
        <div className="actions wide">
          <button type="submit" className="primary" disabled={busy}>
            Create token
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
      {created && (
        <div className="card created" aria-labelledby="created-title">
          <h3 id="created-title">Token created: copy it now</h3>
          <p>It is shown this once. {created.record.readOnly ? 'It can read, never change, the data.' : 'It can read and change the data.'}</p>
          <CopyField label="SQL over HTTP URL" value={created.sqlUrl} />
          <CopyField label="Token" value={created.token} />
          <CopyField label="@libsql/client snippet" value={libsqlSnippet(created.sqlUrl, created.token)} multiline />
          <CopyField label="n8n HTTP Request node" value={n8nSnippet(created.sqlUrl, created.token)} multiline />
          <p className="muted small">In n8n: an HTTP Request node with the method, URL and headers above, and the body as JSON.</p>
          <button type="button" onClick={() => setCreated(undefined)}>
            Done
          </button>
        </div>
      )}
      <h3>Tokens</h3>
      {tokens === undefined ? (
        <p className="muted">Loading…</p>
      ) : tokens.length === 0 ? (
        <p className="muted">No tokens yet.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Tokens of this workspace</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Starts with</th>
                <th scope="col">Access</th>
                <th scope="col">Last used</th>
                <th scope="col">Expires</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tokens.map((t) => (
                <tr key={t.id}>
                  <td>{t.name}</td>
                  <td>
                    <code>{t.prefix}…</code>
                  </td>
                  <td>{t.readOnly ? 'Read-only' : 'Read and write'}</td>
                  <td>{t.lastUsedAt ? when(t.lastUsedAt) : 'Never'}</td>
                  <td>{t.expiresAt ? when(t.expiresAt) : 'Never'}</td>
                  <td>{t.revokedAt ? `Revoked ${when(t.revokedAt)}` : 'Active'}</td>
                  <td>
                    {!t.revokedAt && (
                      <button type="button" onClick={() => revoke(t)} aria-label={`Revoke ${t.name} (${t.prefix})`}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}

export function Settings() {
  const { me } = useConsole()
  if (!me) {
    return (
      <>
        <h1 tabIndex={-1}>Settings</h1>
        <p>
          <Link href="/sign-in">Sign in</Link> to see your account and integrations. Without an account your data stays in this browser.
        </p>
      </>
    )
  }
  const active = me.activeTenant
  return (
    <>
      <h1 tabIndex={-1}>Settings</h1>
      <section aria-labelledby="account">
        <h2 id="account">Account</h2>
        <dl className="facts">
          <dt>Email</dt>
          <dd>{me.user.email}</dd>
          <dt>Workspace</dt>
          <dd>{active ? `${active.name} (${active.slug}, ${active.role})` : 'none'}</dd>
          <dt>Workspaces</dt>
          <dd>{me.tenants.length}</dd>
          {me.user.platformAdmin && (
            <>
              <dt>Platform admin</dt>
              <dd>yes</dd>
            </>
          )}
        </dl>
      </section>
      {active && (active.role === 'owner' || active.role === 'admin') ? (
        <Integrations slug={active.slug} />
      ) : (
        <section aria-labelledby="integrations">
          <h2 id="integrations">Integrations</h2>
          <p>Only the workspace's owners and admins manage its tokens.</p>
        </section>
      )}
    </>
  )
}
