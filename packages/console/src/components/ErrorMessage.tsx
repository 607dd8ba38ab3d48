import { describeError } from '../api.js'

/** A failure as the API worded it, announced to screen readers. Renders nothing without an error. */
export function ErrorMessage({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null
  return (
    <p role="alert" className="error">
      {describeError(error)}
    </p>
  )
}
