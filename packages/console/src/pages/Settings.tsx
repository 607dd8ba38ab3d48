import { useCallback, useEffect, useMemo, useState, type FormEvent } from 'react'
import type { CreatedIntegrationToken, IntegrationToken, ReadOnlyAccessGrant, ReadOnlyAccessOffer } from '@tenantry/client'
import { integrationsOf } from '../api.js'
import { CopyField } from '../components/CopyField.js'
import { ErrorMessage } from '../components/ErrorMessage.js'
import { Link } from '../router.js'
import { useConsole } from '../session.js'

/**
 * Settings: the account, and the active workspace's integrations (seed 000's n8n case): create
 * a read-only or read-write token, shown once with the SQL-over-HTTP URL, copy buttons and
 * snippets for `@libsql/client` and an n8n HTTP Request node; the token list with last use and
 * revoke; and, where the tenant's database confines a login (Postgres schema and database
 * tenants), a read-only Postgres URL for psql or a BI tool, shown once.
 */

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
  const [tokens, setTokens] = useState<IntegrationToken[]>()
  const [created, setCreated] = useState<CreatedIntegrationToken>()
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const integrations = useMemo(() => integrationsOf(slug), [slug])

  const load = useCallback(async () => {
    try {
      setTokens(await integrations.tokens())
    } catch (e) {
      setError(e)
    }
  }, [integrations])
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
      const result = await integrations.createToken({
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

  const revoke = async (token: IntegrationToken) => {
    if (!confirm(`Revoke the token "${token.name}"? Anything using it stops working.`)) return
    setError(undefined)
    try {
      await integrations.revokeToken(token.id)
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

/**
 * Read-only Postgres access: a login that reads this tenant and nothing else, its URL shown
 * once (it carries the password; granting again answers the same login). SQLite tenants read
 * through SQL-over-HTTP with a read-only token instead, which the section says, as a fact.
 */
function ReadOnlyAccess({ slug }: { slug: string }) {
  const [offer, setOffer] = useState<ReadOnlyAccessOffer>()
  const [grant, setGrant] = useState<ReadOnlyAccessGrant>()
  const [error, setError] = useState<unknown>()
  const [notice, setNotice] = useState('')
  const [busy, setBusy] = useState(false)
  const integrations = useMemo(() => integrationsOf(slug), [slug])

  useEffect(() => {
    setOffer(undefined)
    setGrant(undefined)
    setError(undefined)
    setNotice('')
    integrations.readOnlyAccess().then(setOffer, setError)
  }, [integrations])

  const act = async (revoke: boolean) => {
    setBusy(true)
    setError(undefined)
    setNotice('')
    try {
      if (revoke) {
        await integrations.revokeReadOnlyAccess()
        setGrant(undefined)
        setNotice('Read-only access revoked: the login no longer exists.')
      } else {
        setGrant(await integrations.grantReadOnlyAccess())
      }
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }

  return (
    <section aria-labelledby="read-only-access">
      <h2 id="read-only-access">Read-only Postgres access</h2>
      <ErrorMessage error={error} />
      {offer === undefined ? (
        !error && <p className="muted">Loading…</p>
      ) : offer.available ? (
        <>
          <p>
            A Postgres login that reads this workspace's tables and nothing else, for psql or a BI tool. Its URL carries the password: it is shown once; revoke it
            to shut every copy out.
          </p>
          <div className="actions">
            <button type="button" className="primary" disabled={busy} onClick={() => act(false)}>
              Grant read-only access
            </button>
            <button type="button" disabled={busy} onClick={() => act(true)}>
              Revoke read-only access
            </button>
          </div>
          <p role="status" className="muted">
            {notice}
          </p>
          {grant && (
            <div className="card created" aria-labelledby="ro-granted">
              <h3 id="ro-granted">Read-only access granted: copy the URL now</h3>
              <p>
                Login <code>{grant.role}</code>. It can read, never change, the data.
              </p>
              <CopyField label="Read-only Postgres URL" value={grant.url} />
              <button type="button" onClick={() => setGrant(undefined)}>
                Done
              </button>
            </div>
          )}
        </>
      ) : (
        <p>
          This workspace's data is in {offer.engine === 'sqlite' ? 'a SQLite database' : `${offer.engine} (${offer.isolation} isolation)`}, which has no Postgres
          login to hand out: read it with SQL over HTTP and a read-only token, created under Integrations above.
        </p>
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
        <>
          <Integrations slug={active.slug} />
          <ReadOnlyAccess slug={active.slug} />
        </>
      ) : (
        <section aria-labelledby="integrations">
          <h2 id="integrations">Integrations</h2>
          <p>Only the workspace's owners and admins manage its tokens.</p>
        </section>
      )}
    </>
  )
}
