import type { Invitation, ReceivedInvitation, Workspace, WorkspaceMember, WorkspaceRole } from '@tenantry/client'
import { isTenantryClientError } from '@tenantry/client'
import { useCallback, useEffect, useState, type FormEvent } from 'react'
import { ErrorMessage } from '../components/ErrorMessage.js'
import { Link } from '../router.js'
import { auth, useConsole } from '../session.js'

/**
 * Members and invitations (issue 11): the active workspace's members with their roles (owners
 * and admins change them, remove members, invite by email and cancel pending invitations), the
 * invitations the signed-in user received (accept or decline), a form for a new organization,
 * and `/invitations/<id>`, the page an invitation's email links to. Accepting needs a verified
 * email: where the API says it is not, the page says so and offers to send the link again.
 */

const ROLES: WorkspaceRole[] = ['member', 'admin', 'owner']
const when = (iso: string) => new Date(iso).toLocaleString()
/** Personal workspaces (`u_…`) have their user as their one member: nobody is invited there. */
const isPersonal = (workspace: Workspace) => workspace.slug.startsWith('u_')
/** Better Auth's codes for "verify your email first". */
const needsVerification = (error: unknown) =>
  isTenantryClientError(error) && (error.code === 'EMAIL_VERIFICATION_REQUIRED_FOR_INVITATION' || error.code === 'EMAIL_VERIFICATION_REQUIRED_BEFORE_ACCEPTING_OR_REJECTING_INVITATION')

/** Says plainly that the email is not verified (the API's message), with a button that sends the link again. */
function VerifyEmail({ error }: { error: unknown }) {
  const [state, setState] = useState<'idle' | 'sending' | 'sent'>('idle')
  const [failure, setFailure] = useState<unknown>()
  return (
    <div className="card" aria-labelledby="verify-title">
      <h2 id="verify-title">Verify your email address</h2>
      <ErrorMessage error={error} />
      <p>Your email address is not verified yet. Open the link we emailed you when you signed up; then you can see and accept invitations.</p>
      <div className="actions">
        <button
          type="button"
          disabled={state === 'sending'}
          onClick={async () => {
            setState('sending')
            setFailure(undefined)
            try {
              // The link comes back to this page.
              await auth.sendVerificationEmail({ callbackURL: location.href })
              setState('sent')
            } catch (e) {
              setFailure(e)
              setState('idle')
            }
          }}
        >
          Resend verification email
        </button>
      </div>
      <p role="status">{state === 'sent' ? 'Sent: open the link in the email.' : ''}</p>
      <ErrorMessage error={failure} />
    </div>
  )
}

/** The invitations the signed-in user received: accept (joins and switches to the workspace) or decline. */
function ReceivedInvitations() {
  const { me, refresh, switchWorkspace } = useConsole()
  const [items, setItems] = useState<ReceivedInvitation[]>()
  const [error, setError] = useState<unknown>()
  const [actionError, setActionError] = useState<unknown>()
  const load = useCallback(async () => {
    try {
      setItems(await auth.members.received())
      setError(undefined)
    } catch (e) {
      setError(e)
    }
  }, [])
  useEffect(() => void load(), [load])

  const act = async (invitation: ReceivedInvitation, accept: boolean) => {
    setActionError(undefined)
    try {
      if (accept) {
        const before = new Set(me?.tenants.map((t) => t.slug))
        await auth.members.accept(invitation.id)
        // The workspace just joined is the one that was not there before: it becomes the active one.
        const joined = (await refresh())?.tenants.find((t) => !before.has(t.slug))
        if (joined) await switchWorkspace(joined.slug)
      } else {
        await auth.members.reject(invitation.id)
      }
      await load()
    } catch (e) {
      setActionError(e)
    }
  }

  return (
    <section aria-labelledby="received">
      <h2 id="received">Invitations to you</h2>
      {needsVerification(error) ? (
        <VerifyEmail error={error} />
      ) : (
        <>
          <ErrorMessage error={error} />
          {items === undefined ? (
            error ? null : <p className="muted">Loading…</p>
          ) : items.length === 0 ? (
            <p className="muted">No invitations for you.</p>
          ) : (
            <ul className="stack">
              {items.map((i) => (
                <li key={i.id} className="card">
                  <p>
                    <strong>{i.organizationName}</strong> invites you as {i.role} (until {when(i.expiresAt)}).
                  </p>
                  <div className="actions">
                    <button type="button" className="primary" onClick={() => act(i, true)} aria-label={`Accept the invitation to ${i.organizationName}`}>
                      Accept
                    </button>
                    <button type="button" onClick={() => act(i, false)} aria-label={`Decline the invitation to ${i.organizationName}`}>
                      Decline
                    </button>
                  </div>
                </li>
              ))}
            </ul>
          )}
          <ErrorMessage error={actionError} />
        </>
      )}
    </section>
  )
}

/** The active workspace's members and, for its owners and admins, the controls and the invitations. */
function WorkspaceMembers({ workspace }: { workspace: Workspace }) {
  const { me, refresh } = useConsole()
  const [members, setMembers] = useState<WorkspaceMember[]>()
  const [pending, setPending] = useState<Invitation[]>()
  const [error, setError] = useState<unknown>()
  const [status, setStatus] = useState('')
  const [busy, setBusy] = useState(false)
  const personal = isPersonal(workspace)
  const manages = !personal && (workspace.role === 'owner' || workspace.role === 'admin')

  const load = useCallback(async () => {
    try {
      setMembers(await auth.members.list(workspace.slug))
      setPending(manages ? await auth.members.invitations(workspace.slug) : [])
    } catch (e) {
      setError(e)
    }
  }, [workspace.slug, manages])
  useEffect(() => {
    setMembers(undefined)
    setPending(undefined)
    setError(undefined)
    setStatus('')
    void load()
  }, [load])

  /** Runs a change, then reads the lists again; its failure is shown as the API's message. */
  const change = async (run: () => Promise<unknown>, done: string) => {
    setBusy(true)
    setError(undefined)
    setStatus('')
    try {
      await run()
      await load()
      await refresh()
      // Said once the lists show the change.
      setStatus(done)
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }

  const invite = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    const form = event.currentTarget
    const data = new FormData(form)
    const email = String(data.get('email') ?? '').trim()
    const role = String(data.get('role') ?? 'member') as WorkspaceRole
    await change(async () => {
      await auth.members.invite(workspace.slug, { email, role })
      form.reset()
    }, `Invitation sent to ${email}.`)
  }

  const roleChoices = workspace.role === 'owner' ? ROLES : ROLES.filter((r) => r !== 'owner')
  return (
    <section aria-labelledby="members">
      <h2 id="members">Members of {workspace.name}</h2>
      {personal && <p>This is your personal workspace: you are its only member. To work with others, create an organization below and invite them there.</p>}
      {!personal && !manages && <p className="muted">Only the workspace's owners and admins change members and invite people.</p>}
      <p role="status">{status}</p>
      <ErrorMessage error={error} />
      {members === undefined ? (
        error ? null : <p className="muted">Loading…</p>
      ) : (
        // Focusable: at 375 px the table scrolls sideways, and a keyboard must be able to scroll it.
        <div className="table-wrap" tabIndex={0} role="region" aria-label={`Members of ${workspace.name}`}>
          <table>
            <caption className="visually-hidden">Members of {workspace.name}</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col">Joined</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {members.map((m) => {
                const self = m.userId === me?.user.id
                // Only owners change (or remove) owners; nobody changes their own role here.
                const editable = manages && !self && (workspace.role === 'owner' || m.role !== 'owner')
                return (
                  <tr key={m.id}>
                    <td>{m.user.name || '—'}</td>
                    <td>{m.user.email}</td>
                    <td>
                      {editable ? (
                        <select
                          aria-label={`Role of ${m.user.email}`}
                          value={m.role}
                          disabled={busy}
                          onChange={(event) => {
                            const role = event.target.value as WorkspaceRole
                            void change(() => auth.members.changeRole(workspace.slug, m.id, role), `${m.user.email} is now ${role}.`)
                          }}
                        >
                          {(roleChoices.includes(m.role) ? roleChoices : [...roleChoices, m.role]).map((r) => (
                            <option key={r} value={r}>
                              {r}
                            </option>
                          ))}
                        </select>
                      ) : (
                        <>
                          {m.role}
                          {self ? ' (you)' : ''}
                        </>
                      )}
                    </td>
                    <td>{new Date(m.createdAt).toLocaleDateString()}</td>
                    <td>
                      {editable && (
                        <button
                          type="button"
                          className="danger"
                          disabled={busy}
                          aria-label={`Remove ${m.user.email}`}
                          onClick={() => {
                            if (!confirm(`Remove ${m.user.email} from ${workspace.name}? They lose access to its data at once.`)) return
                            void change(() => auth.members.remove(workspace.slug, m.id), `${m.user.email} was removed.`)
                          }}
                        >
                          Remove
                        </button>
                      )}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
      {manages && (
        <>
          <h3>Invite someone</h3>
          <form onSubmit={invite} className="card form-grid" aria-label="Invite someone">
            <p className="field">
              <label htmlFor="invite-email">Email</label>
              <input id="invite-email" name="email" type="email" autoComplete="off" required />
            </p>
            <p className="field">
              <label htmlFor="invite-role">Role</label>
              <select id="invite-role" name="role" defaultValue="member">
                {roleChoices.map((r) => (
                  <option key={r} value={r}>
                    {r}
                  </option>
                ))}
              </select>
            </p>
            <div className="actions wide">
              <button type="submit" className="primary" disabled={busy}>
                Send invitation
              </button>
            </div>
          </form>
          <h3>Pending invitations</h3>
          {pending === undefined ? null : pending.length === 0 ? (
            <p className="muted">No pending invitations.</p>
          ) : (
            <div className="table-wrap" tabIndex={0} role="region" aria-label={`Pending invitations to ${workspace.name}`}>
              <table>
                <caption className="visually-hidden">Pending invitations to {workspace.name}</caption>
                <thead>
                  <tr>
                    <th scope="col">Email</th>
                    <th scope="col">Role</th>
                    <th scope="col">Expires</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {pending.map((i) => (
                    <tr key={i.id}>
                      <td>{i.email}</td>
                      <td>{i.role}</td>
                      <td>{when(i.expiresAt)}</td>
                      <td>
                        <button
                          type="button"
                          disabled={busy}
                          aria-label={`Cancel the invitation of ${i.email}`}
                          onClick={() => void change(() => auth.members.cancelInvitation(i.id), `The invitation of ${i.email} was cancelled.`)}
                        >
                          Cancel
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  )
}

/** A new organization (a new tenant): its creator owns it, and it becomes the active workspace. */
function NewOrganization() {
  const { refresh, switchWorkspace } = useConsole()
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const create = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    const element = event.currentTarget
    const form = new FormData(element)
    setBusy(true)
    setError(undefined)
    try {
      const created = await auth.members.createOrganization({ name: String(form.get('name') ?? ''), slug: String(form.get('slug') ?? '') })
      element.reset()
      await refresh()
      await switchWorkspace(created.slug)
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }
  return (
    <section aria-labelledby="new-organization">
      <h2 id="new-organization">New organization</h2>
      <form onSubmit={create} className="card form-grid" aria-label="New organization">
        <p className="field">
          <label htmlFor="org-name">Organization name</label>
          <input id="org-name" name="name" required maxLength={100} />
        </p>
        <p className="field">
          <label htmlFor="org-slug">Slug</label>
          <input id="org-slug" name="slug" required pattern="[a-z][a-z0-9_]{1,62}" aria-describedby="org-slug-help" />
          <small id="org-slug-help">Lower-case letters, digits and _, starting with a letter; it never changes.</small>
        </p>
        <div className="actions wide">
          <button type="submit" className="primary" disabled={busy}>
            Create organization
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
    </section>
  )
}

/** `/members`. */
export function Members() {
  const { me } = useConsole()
  if (!me) {
    return (
      <>
        <h1 tabIndex={-1}>Members</h1>
        <p>
          <Link href="/sign-in?next=/members">Sign in</Link> to see your workspaces' members and your invitations.
        </p>
      </>
    )
  }
  return (
    <>
      <h1 tabIndex={-1}>Members</h1>
      {me.activeTenant ? <WorkspaceMembers workspace={me.activeTenant} /> : <p>Choose a workspace in the header to see its members.</p>}
      <ReceivedInvitations />
      <NewOrganization />
    </>
  )
}

/** `/invitations/<id>`: the page an invitation's email links to. Shows it and accepts it; signs in first if needed, and comes back. */
export function InvitationPage({ id }: { id: string }) {
  const { me, refresh, switchWorkspace } = useConsole()
  const [invitation, setInvitation] = useState<ReceivedInvitation>()
  const [error, setError] = useState<unknown>()
  const [done, setDone] = useState<'accepted' | 'declined'>()
  const [busy, setBusy] = useState(false)
  const signedIn = !!me

  useEffect(() => {
    if (!signedIn) return
    setError(undefined)
    auth.members.invitation(id).then(setInvitation, setError)
  }, [id, signedIn])

  if (!me) {
    const next = encodeURIComponent(location.pathname)
    return (
      <section className="narrow">
        <h1 tabIndex={-1}>Invitation</h1>
        <p>You were invited to a workspace. Sign in with the email address the invitation was sent to (or create an account with it) to see and accept it.</p>
        <div className="actions">
          <Link className="button" href={`/sign-in?next=${next}`}>
            Sign in
          </Link>
          <Link className="button" href={`/sign-up?next=${next}`}>
            Create an account
          </Link>
        </div>
      </section>
    )
  }

  const act = async (accept: boolean) => {
    setBusy(true)
    setError(undefined)
    try {
      if (accept) {
        await auth.members.accept(id)
        await refresh()
        if (invitation?.organizationSlug) await switchWorkspace(invitation.organizationSlug)
        setDone('accepted')
      } else {
        await auth.members.reject(id)
        setDone('declined')
      }
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }

  return (
    <section className="narrow">
      <h1 tabIndex={-1}>Invitation</h1>
      {needsVerification(error) ? (
        <VerifyEmail error={error} />
      ) : (
        <>
          <ErrorMessage error={error} />
          {done === 'accepted' && invitation ? (
            <p role="status">
              You joined {invitation.organizationName}. <Link href="/members">See its members</Link> or <Link href="/">open the CV builder</Link>.
            </p>
          ) : done === 'declined' ? (
            <p role="status">You declined the invitation.</p>
          ) : invitation ? (
            <div className="card">
              <p>
                {invitation.inviterEmail ?? 'Someone'} invited you ({invitation.email}) to join <strong>{invitation.organizationName}</strong> as {invitation.role}.
              </p>
              <p className="muted small">The invitation is valid until {when(invitation.expiresAt)}.</p>
              <div className="actions">
                <button type="button" className="primary" disabled={busy} onClick={() => act(true)}>
                  Accept invitation
                </button>
                <button type="button" disabled={busy} onClick={() => act(false)}>
                  Decline
                </button>
              </div>
            </div>
          ) : error ? (
            <p>
              <Link href="/members">See your invitations</Link>
            </p>
          ) : (
            <p className="muted">Loading…</p>
          )}
        </>
      )}
    </section>
  )
}

