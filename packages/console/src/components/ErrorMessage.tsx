import { TenantryClientError } from '@tenantry/client'

/** A failure as the API worded it, announced to screen readers. Renders nothing without an error. */
export function ErrorMessage({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null
  return (
    <p role="alert" className="error">
      {describeError(error)}
    </p>
  )
}

/** What to show for a failure: the API's message (and code), never a blank page. */
export function describeError(error: unknown): string {
  if (error instanceof TenantryClientError) return `${error.message} (${error.code})`
  if (error instanceof Error) return error.message
  return String(error)
}
