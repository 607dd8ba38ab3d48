import { assertTemplateKey, isTenantId, TEMPLATE_KEY_PATTERN } from '../../identifiers.js'

/**
 * How Tenantry names the files of a SQLite data source, each derived from an id and never
 * from input. The rules these names follow are in `identifiers.ts`.
 */

/** A tenant's database file: `<tenant id>.db`. */
export function tenantFileName(tenantId: string): string {
  return `${tenantId}.db`
}

/** Whether a file in the data source's directory is a tenant's database. */
export function isTenantFileName(name: string): boolean {
  return name.endsWith('.db') && isTenantId(name.slice(0, -'.db'.length))
}

/** A create's staging copy of a tenant file, `<tenant id>.db.creating`: published under the tenant's name once complete. */
export function isStagingFileName(name: string): boolean {
  return name.endsWith('.creating') && isTenantFileName(name.slice(0, -'.creating'.length))
}

/** What a crashed write may leave next to a tenant file: SQLite's own side files, and our staging copy. */
export const SIDE_FILE_SUFFIXES = ['-wal', '-shm', '-journal', '.creating']

/** The subdirectory of sealed templates, hidden so that it is never mistaken for tenant data. */
export const TEMPLATES_DIRECTORY = '.templates'

/** A sealed template's file, named by the migration set's content hash. */
export function templateFileName(key: string): string {
  assertTemplateKey(key)
  return `${key}.db`
}

/** Scratch files of a template build: `<key>.<pid>-<time>.build` (with its -wal/-shm) and `.sealed`. */
export const BUILD_FILE_PATTERN = new RegExp(`^${TEMPLATE_KEY_PATTERN.source.slice(1, -1)}\\.(\\d+)-[a-z0-9]+\\.(?:build|sealed)`)
