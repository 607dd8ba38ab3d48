import type { Tenantry } from 'tenantry'
import { HttpError } from '../errors.js'
import type { Principal } from '../principal.js'
import { verifiedTokens } from './verified-tokens.js'

/** Every Tenantry integration token starts with this; anything else is not ours to judge. */
const TOKEN_PREFIX = 'tnt_'

/**
 * Turns an `Authorization` header into a token principal.
 *
 * - header absent, or not `Bearer tnt_…` → `undefined` (another scheme, e.g. a session, may apply)
 * - `Bearer tnt_…` that is malformed, unknown, expired, revoked, or whose tenant is not ready
 *   → `HttpError('UNAUTHENTICATED')` (401), with one message for all cases so tokens cannot be probed
 * - valid → `{ kind: 'token', tokenId, tenantId, readOnly }`
 *
 * The tenant comes only from the token itself, never from the request.
 */
export async function authenticateToken(
  tenantry: Tenantry,
  authorization: string | undefined,
): Promise<Principal | undefined> {
  if (!authorization) return undefined
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)
  const credential = match?.[1]
  if (!credential || !credential.startsWith(TOKEN_PREFIX)) return undefined
  // Verified once per token per TTL; revocations drop the entry (see VerifiedTokenCache).
  const record = await verifiedTokens(tenantry).verify(tenantry, credential)
  if (!record) throw new HttpError('UNAUTHENTICATED', 'Invalid, expired or revoked token')
  return { kind: 'token', tokenId: record.id, tenantId: record.tenantId, readOnly: record.readOnly }
}
