import { userInfo } from 'node:os'
import { InvalidArgumentError } from 'commander'
import { slugProblem, type Isolation } from 'tenantry'
import { UsageError } from './errors.js'
import { quoteInput } from './output.js'

/**
 * Checks a slug from the command line before anything is opened, so bad input changes
 * nothing at all. The slug is shown with non-ASCII escaped: `аcme` with a Cyrillic `а`
 * reads as `"\u0430cme"`, not as a puzzling `"acme"`.
 */
export function requireSlug(slug: string): string {
  const problem = slugProblem(slug)
  if (problem) throw new UsageError(`Invalid tenant slug ${quoteInput(slug)}: ${problem}`)
  return slug
}

/** The isolations a tenant can be given on the command line (`--isolation`). */
export const ISOLATIONS: readonly Isolation[] = ['database', 'schema', 'row']

const IDENTIFIER = /^[a-z][a-z0-9_]{0,62}$/

/** A data source id from the command line (the catalog's identifier rule). */
export function requireDataSourceId(id: string): string {
  if (!IDENTIFIER.test(id)) {
    throw new UsageError(
      `Invalid data source id ${quoteInput(id)}: use 1-63 characters of lowercase a-z, 0-9 and "_", starting with a letter`,
    )
  }
  return id
}

/** Commander argument parser for a whole number of at least 1. */
export function positiveInteger(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a whole number of at least 1')
  }
  return n
}

/** Who is acting, for the audit log: `cli:<os user>`. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`
  } catch {
    return 'cli'
  }
}
