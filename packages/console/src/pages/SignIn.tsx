import { useState, type FormEvent } from 'react'
import { ErrorMessage } from '../components/ErrorMessage.js'
import { Link, navigate, nextPath } from '../router.js'
import { auth, useConsole } from '../session.js'

/**
 * Sign in and sign up with email and password, and one button per provider the server has
 * configured (GitHub, Google, OpenID). After either, the CV builder works in the workspace.
 */
export function SignIn({ mode }: { mode: 'sign-in' | 'sign-up' }) {
  const { providers, signedIn, me } = useConsole()
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const signUp = mode === 'sign-up'

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    const form = new FormData(event.currentTarget)
    const email = String(form.get('email') ?? '')
    const password = String(form.get('password') ?? '')
    setBusy(true)
    setError(undefined)
    // Where the form was sent from: a link the user follows while the sign-in finishes (the
    // header's links show as soon as the session is known) wins over going to `next`.
    const from = location.pathname + location.search
    try {
      // The verification link that sign-up emails comes back to where the user was going (an invitation).
      if (signUp) await auth.signUp({ email, password, name: String(form.get('name') ?? '') || email.split('@')[0]!, callbackURL: `${location.origin}${nextPath()}` })
      else await auth.signIn({ email, password })
      await signedIn()
      if (location.pathname + location.search === from) navigate(nextPath())
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }

  return (
    <section className="narrow">
      <h1 tabIndex={-1}>{signUp ? 'Create an account' : 'Sign in'}</h1>
      {me && <p>You are signed in as {me.user.email}.</p>}
      <form onSubmit={submit} className="stack" aria-describedby={error ? 'sign-in-error' : undefined}>
        {signUp && (
          <p className="field">
            <label htmlFor="name">Name</label>
            <input id="name" name="name" autoComplete="name" />
          </p>
        )}
        <p className="field">
          <label htmlFor="email">Email</label>
          <input id="email" name="email" type="email" autoComplete="email" required />
        </p>
        <p className="field">
          <label htmlFor="password">Password</label>
          <input id="password" name="password" type="password" autoComplete={signUp ? 'new-password' : 'current-password'} minLength={8} required />
          {signUp && <small>At least 8 characters.</small>}
        </p>
        <div id="sign-in-error">
          <ErrorMessage error={error} />
        </div>
        <button type="submit" className="primary" disabled={busy}>
          {signUp ? 'Create account' : 'Sign in'}
        </button>
      </form>
      {providers.length > 0 && (
        <div className="stack providers">
          <p>Or continue with</p>
          {providers.map((provider) => (
            <button
              key={provider.id}
              type="button"
              onClick={async () => {
                setError(undefined)
                try {
                  await auth.signInWith(provider, { callbackURL: `${location.origin}/` })
                } catch (e) {
                  setError(e)
                }
              }}
            >
              {provider.name}
            </button>
          ))}
        </div>
      )}
      <p>
        {signUp ? (
          <>
            Already have an account? <Link href={`/sign-in${location.search}`}>Sign in</Link>
          </>
        ) : (
          <>
            No account yet? <Link href={`/sign-up${location.search}`}>Create one</Link>
          </>
        )}
      </p>
      <p className="muted">Without an account, the CV builder keeps your data in this browser.</p>
    </section>
  )
}
