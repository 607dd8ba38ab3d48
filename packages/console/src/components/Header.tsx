import { useEffect, useRef, useState } from 'react'
import { Link, navigate } from '../router.js'
import { useConsole } from '../session.js'
import { ErrorMessage } from './ErrorMessage.js'

/** The workspace switcher: the user's personal workspace and organizations; choosing one makes it active. */
function WorkspaceSwitcher() {
  const { me, switchWorkspace } = useConsole()
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  if (!me) return null
  return (
    <div className="switcher">
      <label htmlFor="workspace">Workspace</label>
      <select
        id="workspace"
        value={me.activeTenant?.slug ?? ''}
        disabled={busy}
        onChange={async (event) => {
          setBusy(true)
          setError(undefined)
          try {
            await switchWorkspace(event.target.value)
          } catch (e) {
            setError(e)
          } finally {
            setBusy(false)
          }
        }}
      >
        {!me.activeTenant && <option value="">Choose a workspace</option>}
        {me.tenants.map((t) => (
          <option key={t.id} value={t.slug}>
            {t.name}
            {t.role === 'owner' ? '' : ` (${t.role})`}
          </option>
        ))}
      </select>
      <ErrorMessage error={error} />
    </div>
  )
}

/** The account menu: who is signed in, settings, sign out. A disclosure button, closed by Escape. */
function AccountMenu() {
  const { me, signOut } = useConsole()
  const [open, setOpen] = useState(false)
  const [error, setError] = useState<unknown>()
  const button = useRef<HTMLButtonElement>(null)
  useEffect(() => {
    if (!open) return
    const close = (event: KeyboardEvent) => {
      if (event.key === 'Escape') {
        setOpen(false)
        button.current?.focus()
      }
    }
    document.addEventListener('keydown', close)
    return () => document.removeEventListener('keydown', close)
  }, [open])
  if (!me) {
    return (
      <Link className="button" href="/sign-in">
        Sign in
      </Link>
    )
  }
  return (
    <div className="account">
      <button ref={button} type="button" aria-expanded={open} aria-controls="account-menu" onClick={() => setOpen(!open)}>
        Account
      </button>
      {open && (
        <div id="account-menu" className="menu">
          <p className="muted">Signed in as {me.user.email}</p>
          <ul>
            <li>
              <Link href="/settings" onClick={() => setOpen(false)}>
                Settings
              </Link>
            </li>
            <li>
              <button
                type="button"
                onClick={async () => {
                  try {
                    await signOut()
                    setOpen(false)
                    navigate('/')
                  } catch (e) {
                    setError(e)
                  }
                }}
              >
                Sign out
              </button>
            </li>
          </ul>
          <ErrorMessage error={error} />
        </div>
      )}
    </div>
  )
}

export function Header() {
  const { me } = useConsole()
  return (
    <header className="header">
      <Link href="/" className="brand">
        Tenantry
      </Link>
      <nav aria-label="Main">
        <ul>
          <li>
            <Link href="/">CV builder</Link>
          </li>
          {me && (
            <li>
              <Link href="/members">Members</Link>
            </li>
          )}
          {me && (
            <li>
              <Link href="/settings">Settings</Link>
            </li>
          )}
          {me?.user.platformAdmin && (
            <li>
              <Link href="/admin">Admin</Link>
            </li>
          )}
        </ul>
      </nav>
      <div className="header-end">
        <WorkspaceSwitcher />
        <AccountMenu />
      </div>
    </header>
  )
}
