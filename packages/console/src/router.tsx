import { useEffect, useState, type AnchorHTMLAttributes, type MouseEvent } from 'react'

/**
 * The console's router: paths in the address bar (the server answers `index.html` for any
 * console path, so a reload or a shared link lands on the same page), `history.pushState` to
 * move, and a hook that re-renders on every move. Small on purpose: the console has a handful
 * of flat routes.
 */

const listeners = new Set<() => void>()
const notify = () => listeners.forEach((l) => l())
globalThis.addEventListener?.('popstate', notify)

/** Goes to `path` (a console path, e.g. `/settings`) without reloading. */
export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (path === location.pathname + location.search) return
  if (options.replace) history.replaceState(null, '', path)
  else history.pushState(null, '', path)
  notify()
  // A new page starts at its top, with the focus on its heading for keyboard and screen reader users.
  requestAnimationFrame(() => document.querySelector<HTMLElement>('main h1')?.focus())
}

/** The current path (`location.pathname`), re-rendering on every navigation. */
export function usePath(): string {
  const [path, setPath] = useState(location.pathname)
  useEffect(() => {
    const update = () => setPath(location.pathname)
    listeners.add(update)
    return () => void listeners.delete(update)
  }, [])
  return path
}

/** A link that navigates in-app (ctrl/cmd-click still opens a new tab). */
export function Link({ href, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const current = usePath() === href
  return (
    <a
      {...rest}
      href={href}
      aria-current={current ? 'page' : undefined}
      onClick={(event: MouseEvent<HTMLAnchorElement>) => {
        onClick?.(event)
        if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
        event.preventDefault()
        navigate(href)
      }}
    />
  )
}

/**
 * Where to go after signing in: the `next` query parameter when it is a console path (one
 * leading `/`, so never another site), else `fallback`. Pages that need a signed-in user (an
 * invitation's link) send the user to `/sign-in?next=<their path>` and get them back.
 */
export function nextPath(fallback = '/'): string {
  const next = new URLSearchParams(location.search).get('next')
  return next && /^\/(?![/\\])/.test(next) ? next : fallback
}

/** Where the invitation page's path names an invitation: `/invitations/<id>` → its id. */
export function invitationIdOf(path: string): string | undefined {
  const match = /^\/invitations\/([^/]+)$/.exec(path)
  if (!match) return undefined
  try {
    return decodeURIComponent(match[1]!)
  } catch {
    return undefined // a malformed escape (`%zz`) names no invitation: the not-found page says so
  }
}
