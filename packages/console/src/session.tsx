import { claimLocalData, createAuth, createClient, hasPendingClaim, localBackend, remoteBackend, type AuthProvider, type Me, type TenantryClient } from '@tenantry/client'
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react'
import { collections, localDefaults } from '../../../examples/cv-builder/collections.js'
import type { MoveProgress } from './components/MovingOverlay.js'

/**
 * Who is using the console and where their data lives. Anonymous: the CV builder keeps its
 * data in this browser (IndexedDB, the local backend). Signed in: in the active workspace on
 * the server (the remote backend on `/api/t/<slug>/data`). Everything goes through
 * `@tenantry/client`.
 */

export type Collections = typeof collections
export const auth = createAuth({ baseUrl: '' })

/** The IndexedDB database of anonymous use in this browser. */
export const LOCAL_DATABASE = 'tenantry-console'

export interface ConsoleState {
  /** `undefined` while the first look-up runs; `null` when signed out. */
  me: Me | null | undefined
  /** The first look-up failed (e.g. the server is unreachable): shown instead of a blank page. */
  loadError: unknown
  providers: AuthProvider[]
  /** The CV builder's data: local when signed out, the active workspace's when signed in. */
  data: TenantryClient<Collections> | undefined
  mode: 'local' | 'remote'
  /** Set while the first sign-in's claim moves local data to the workspace. */
  moving: MoveProgress | undefined
  /** Bumped when the data changed behind the page's back (a claim landed): pages read it again. */
  dataVersion: number
  /** Looks the user up again (after sign-in, sign-out, switching workspace). */
  refresh(): Promise<Me | null>
  switchWorkspace(slug: string): Promise<void>
  signOut(): Promise<void>
  /** Call after a sign-in or sign-up succeeded: moves this browser's local data into the workspace (the first sign-in's claim). */
  signedIn(): Promise<void>
}

const Context = createContext<ConsoleState | undefined>(undefined)

export function useConsole(): ConsoleState {
  const state = useContext(Context)
  if (!state) throw new Error('useConsole outside <ConsoleProvider>')
  return state
}

/**
 * The first sign-in's claim (issue 10): the data this browser kept anonymously moves into the
 * workspace (`claimLocalData`: once, atomically on the server; the local copy goes only after
 * the server confirms), with the "Moving your data…" overlay meanwhile. Nothing local: no overlay.
 */
async function moveLocalData(slug: string, report: (progress: MoveProgress | undefined) => void): Promise<boolean> {
  const local = localBackend({ collections, defaults: localDefaults, name: LOCAL_DATABASE })
  try {
    const client = createClient({ backend: local })
    const rows = (await client.collection('jobs').count()) + (await client.collection('highlights').count())
    if (rows === 0 && !(await hasPendingClaim(local))) return false
    report({ done: 0, total: rows })
    await claimLocalData({ local, baseUrl: location.origin, tenant: slug, onProgress: ({ sent, total }) => report({ done: sent, total }) })
    return true
  } finally {
    report(undefined)
    await local.close()
  }
}

export function ConsoleProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null | undefined>(undefined)
  const [loadError, setLoadError] = useState<unknown>(undefined)
  const [providers, setProviders] = useState<AuthProvider[]>([])
  const [moving, setMoving] = useState<MoveProgress | undefined>(undefined)
  const [dataVersion, setDataVersion] = useState(0)

  const refresh = useCallback(async () => {
    try {
      const next = await auth.me()
      setMe(next)
      setLoadError(undefined)
      return next
    } catch (error) {
      setLoadError(error)
      setMe(null)
      return null
    }
  }, [])

  useEffect(() => {
    // Signed in on load (back from GitHub, Google or OpenID, or a claim a closed tab left
    // unfinished): what this browser still holds moves into the workspace first.
    void refresh().then(async (current) => {
      const slug = current?.activeTenant?.slug
      if (!slug) return
      try {
        if (await moveLocalData(slug, setMoving)) setDataVersion((v) => v + 1)
      } catch (error) {
        setLoadError(error)
      }
    })
    auth.providers().then(setProviders, () => setProviders([]))
    // Another tab signing out (or the session ending) is heard here.
    return auth.onSessionChange((session) => {
      if (!session) setMe((current) => (current ? null : current))
    })
  }, [refresh])

  const slug = me?.activeTenant?.slug
  const data = useMemo(() => {
    if (me === undefined) return undefined
    if (me && !slug) return undefined
    const backend = slug
      ? remoteBackend({ collections, baseUrl: location.origin, tenant: slug })
      : localBackend({ collections, defaults: localDefaults, name: LOCAL_DATABASE })
    return createClient({ backend })
  }, [me === undefined, slug])
  useEffect(() => () => void data?.close(), [data])

  const value: ConsoleState = {
    me,
    loadError,
    providers,
    data,
    mode: slug ? 'remote' : 'local',
    moving,
    dataVersion,
    refresh,
    switchWorkspace: async (next) => {
      await auth.switchTenant(next)
      await refresh()
    },
    signOut: async () => {
      await auth.signOut()
      await refresh()
    },
    signedIn: async () => {
      const next = await refresh()
      const slug = next?.activeTenant?.slug
      if (slug && (await moveLocalData(slug, setMoving))) setDataVersion((v) => v + 1)
      await refresh()
    },
  }
  return <Context.Provider value={value}>{children}</Context.Provider>
}
