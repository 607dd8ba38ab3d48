/** Codes the auth feature adds to Better Auth's own, answered as `{ error: { code, message } }` (statuses: errors.ts). */
export const AUTH_ERROR_CODES = {
  TENANT_PROVISIONING_FAILED: 'The organization could not be created because its tenant could not be provisioned',
  INVALID_ORIGIN: 'This request must come from a trusted origin (add yours to TENANTRY_TRUSTED_ORIGINS)',
  SLUG_IMMUTABLE: "An organization's slug is its tenant's slug and cannot be changed",
} as const

export type AuthErrorCode = keyof typeof AUTH_ERROR_CODES
