import { useId, useState } from 'react'

/** A read-only value with a Copy button (the clipboard API; where the browser refuses, the value is selected to copy by hand). */
export function CopyField({ label, value, multiline = false }: { label: string; value: string; multiline?: boolean }) {
  const id = useId()
  const [status, setStatus] = useState('')
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value)
      setStatus('Copied')
    } catch {
      const field = document.getElementById(id) as HTMLInputElement | HTMLTextAreaElement | null
      field?.select()
      setStatus('Selected: press Ctrl+C to copy')
    }
  }
  return (
    <div className="field copy-field">
      <label htmlFor={id}>{label}</label>
      <div className="copy-row">
        {multiline ? (
          <textarea id={id} readOnly value={value} rows={value.split('\n').length} spellCheck={false} />
        ) : (
          <input id={id} readOnly value={value} spellCheck={false} />
        )}
        <button type="button" onClick={copy} aria-label={`Copy ${label}`}>
          Copy
        </button>
      </div>
      <span role="status" className="muted small">
        {status}
      </span>
    </div>
  )
}
