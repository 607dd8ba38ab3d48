/**
 * The full-screen "Moving your data…" overlay of the first sign-in (seed 000): the local
 * (IndexedDB) data moving into the user's workspace. `progress` is the claim's: `done` of
 * `total` rows; without a total it shows an indeterminate bar.
 */
export interface MoveProgress {
  done: number
  total?: number
}

export function MovingOverlay({ progress }: { progress: MoveProgress }) {
  const { done, total } = progress
  return (
    <div className="overlay" role="dialog" aria-modal="true" aria-labelledby="moving-title">
      <div className="overlay-box">
        <h2 id="moving-title">Moving your data…</h2>
        <p>Your jobs and highlights are moving from this browser into your workspace. Keep this tab open.</p>
        <progress aria-label="Moved so far" max={total ?? undefined} value={total !== undefined ? done : undefined} />
        {total !== undefined && (
          <p aria-live="polite">
            {done} of {total} moved
          </p>
        )}
      </div>
    </div>
  )
}
