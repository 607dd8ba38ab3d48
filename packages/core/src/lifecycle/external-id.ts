import { TenantryError } from '../errors.js'

/** The longest external id: what auth providers and CRMs hand out fits easily (Clerk, Auth0, Stripe ids are under 64). */
export const MAX_EXTERNAL_ID_LENGTH = 255

/**
 * Why `value` cannot be a tenant's external id, or undefined when it can: 1 to 255 characters,
 * none of them a control character (an id is compared exactly, so an invisible character would
 * make two ids that print alike). Case and punctuation are kept as given: `User_A` and `user_a`
 * are two ids, as the system that issued them says.
 */
export function externalIdProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'an external id is a string'
  if (value.length === 0) return 'an external id is not empty'
  if (value.length > MAX_EXTERNAL_ID_LENGTH) return `an external id has at most ${MAX_EXTERNAL_ID_LENGTH} characters`
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return 'an external id has no control characters'
  return undefined
}

export function assertExternalId(value: unknown): asserts value is string {
  const problem = externalIdProblem(value)
  if (problem) throw new TenantryError('INVALID_OPTION', `Invalid external id ${JSON.stringify(String(value)).slice(0, 80)}: ${problem}`)
}
