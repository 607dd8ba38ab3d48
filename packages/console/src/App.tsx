import { Component, lazy, Suspense, type ReactNode } from 'react'
import { ErrorMessage } from './components/ErrorMessage.js'
import { Header } from './components/Header.js'
import { MovingOverlay } from './components/MovingOverlay.js'
import { AdminNav } from './components/AdminNav.js'
import { CvBuilder } from './pages/CvBuilder.js'
import { invitationIdOf, Link, usePath } from './router.js'
import { ConsoleProvider, useConsole } from './session.js'

// The CV builder is the landing page (anonymous visitors included): it ships in the first chunk.
// Every other page is its own chunk, loaded the first time it is shown.
const SignIn = lazy(() => import('./pages/SignIn.js').then((m) => ({ default: m.SignIn })))
const Settings = lazy(() => import('./pages/Settings.js').then((m) => ({ default: m.Settings })))
const Members = lazy(() => import('./pages/Members.js').then((m) => ({ default: m.Members })))
const InvitationPage = lazy(() => import('./pages/Members.js').then((m) => ({ default: m.InvitationPage })))
const Admin = lazy(() => import('./pages/Admin.js').then((m) => ({ default: m.Admin })))
const AdminMigrations = lazy(() => import('./pages/AdminMigrations.js').then((m) => ({ default: m.AdminMigrations })))
const AdminDataSources = lazy(() => import('./pages/AdminDataSources.js').then((m) => ({ default: m.AdminDataSources })))

/** A render failure shows its message and a way back, never a blank page. */
class ErrorBoundary extends Component<{ children: ReactNode }, { error: unknown }> {
  override state: { error: unknown } = { error: undefined }
  static getDerivedStateFromError(error: unknown) {
    return { error }
  }
  override render() {
    if (this.state.error === undefined) return this.props.children
    return (
      <main>
        <h1 tabIndex={-1}>Something went wrong</h1>
        <ErrorMessage error={this.state.error} />
        <p>
          <a href="/">Back to the start</a>
        </p>
      </main>
    )
  }
}

function Page() {
  const path = usePath()
  const { me } = useConsole()
  if (me === undefined) return <p className="loading">Loading…</p>
  if (path === '/') return <CvBuilder />
  if (path === '/sign-in') return <SignIn mode="sign-in" />
  if (path === '/sign-up') return <SignIn mode="sign-up" />
  if (path === '/settings') return <Settings />
  if (path === '/members') return <Members />
  if (invitationIdOf(path)) return <InvitationPage id={invitationIdOf(path)!} />
  if (path === '/admin' || path.startsWith('/admin/')) {
    if (!me?.user.platformAdmin) {
      return (
        <>
          <h1 tabIndex={-1}>Admin</h1>
          <p>Platform admins only.</p>
        </>
      )
    }
    const section = path === '/admin' ? <Admin /> : path === '/admin/migrations' ? <AdminMigrations /> : path === '/admin/data-sources' ? <AdminDataSources /> : undefined
    if (section) {
      return (
        <>
          <AdminNav />
          {section}
        </>
      )
    }
  }
  return (
    <>
      <h1 tabIndex={-1}>Page not found</h1>
      <p>
        There is no page at <code>{path}</code>. <Link href="/">Go to the CV builder</Link>.
      </p>
    </>
  )
}

function Shell() {
  const { moving, loadError } = useConsole()
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <Header />
      <main id="main">
        <ErrorMessage error={loadError} />
        <ErrorBoundary>
          <Suspense fallback={<p className="loading">Loading…</p>}>
            <Page />
          </Suspense>
        </ErrorBoundary>
      </main>
      {moving && <MovingOverlay progress={moving} />}
    </>
  )
}

export function App() {
  return (
    <ConsoleProvider>
      <Shell />
    </ConsoleProvider>
  )
}
