import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** File under `$TENANTRY_HOME` that keeps the generated secret between runs. */
export const AUTH_SECRET_FILE = 'auth-secret'

/**
 * Better Auth's secret: `BETTER_AUTH_SECRET` when set; otherwise one generated once and kept
 * in `<home>/auth-secret` (mode 0600), so sessions survive restarts in development.
 * The value is never logged.
 */
export function loadAuthSecret(home: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.BETTER_AUTH_SECRET) return env.BETTER_AUTH_SECRET
  const path = join(home, AUTH_SECRET_FILE)
  if (existsSync(path)) {
    const secret = readFileSync(path, 'utf8').trim()
    if (secret.length >= 32) return secret
  }
  mkdirSync(home, { recursive: true, mode: 0o700 })
  const secret = randomBytes(32).toString('base64url')
  // `wx`: two processes starting at once must not overwrite each other's secret.
  try {
    writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: 'wx' })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    return readFileSync(path, 'utf8').trim()
  }
  chmodSync(path, 0o600)
  return secret
}
