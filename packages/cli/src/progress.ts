import cliProgress from 'cli-progress'
import { oneLine } from './errors.js'
import { safeText, type Output } from './output.js'

/** What happened to one item (a tenant) of a long operation. */
export type Outcome = 'succeeded' | 'skipped' | 'failed'

export interface ProgressOptions {
  /** What the bar counts, e.g. `tenants`. */
  unit: string
  /** Items expected; unknown until `start()` says otherwise. */
  total?: number
  /** `--json`: no bar and no lines, the command prints one JSON document. */
  json?: boolean
}

/**
 * Progress of a long operation over many tenants (migration fan-out, bulk creates, `sql --all`).
 *
 * On a terminal (stderr is a TTY) a live bar on stderr, drawn by `cli-progress`: done/total,
 * rate, time left and the running count of failures. Off a terminal, one plain line per item on
 * stderr (what a log or CI keeps); with `--json`, nothing. Either way `finish()` prints the
 * summary on stdout: succeeded, skipped, failed, and each failure with its tenant and reason (by name),
 * so a failure never scrolls away with the bar.
 */
export class Progress {
  readonly #out: Output
  readonly #options: ProgressOptions
  readonly #bar: cliProgress.SingleBar | undefined
  readonly #counts = { succeeded: 0, skipped: 0, failed: 0 }
  readonly #failures: Array<{ item: string; reason: string }> = []
  #started = false
  #startedAt = performance.now()

  constructor(out: Output, options: ProgressOptions) {
    this.#out = out
    this.#options = options
    const terminal = out.terminal()
    if (terminal && !options.json) {
      this.#bar = new cliProgress.SingleBar(
        {
        stream: terminal,
        format: `{bar} {value}/{total} ${options.unit} | {speed}/s | {eta_formatted} left | {failed} failed`,
        barsize: 30,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
        fps: 10,
        },
        cliProgress.Presets.shades_classic,
      )
    }
  }

  /** Starts the bar once the total is known (a fan-out learns it after reading the catalog). */
  start(total: number): void {
    if (this.#started) return
    this.#started = true
    this.#startedAt = performance.now()
    this.#bar?.start(total, 0, { speed: '0', failed: 0 })
  }

  /** One item is done: `line` is what a plain log shows for it; a failure keeps its reason for the summary. */
  done(item: string, outcome: Outcome, line: string, reason?: string): void {
    if (!this.#started) this.start(this.#options.total ?? 0)
    this.#counts[outcome]++
    if (outcome === 'failed') this.#failures.push({ item, reason: safeText(oneLine(reason ?? 'unknown error')) })
    if (this.#bar) this.#bar.increment(1, { speed: this.#rate(), failed: this.#counts.failed })
    else if (!this.#options.json) this.#out.note(line)
  }

  /** Items per second since `start()`. */
  #rate(): string {
    const seconds = (performance.now() - this.#startedAt) / 1000
    const done = this.#counts.succeeded + this.#counts.skipped + this.#counts.failed
    return seconds > 0 ? (done / seconds).toFixed(done / seconds >= 100 ? 0 : 1) : '0'
  }

  /** Stops the bar and prints the summary (not with `--json`); answers the counts. */
  finish(summary?: string): { succeeded: number; skipped: number; failed: number } {
    this.#bar?.stop()
    if (!this.#options.json) {
      const { succeeded, skipped, failed } = this.#counts
      this.#out.line(summary ?? `${succeeded} succeeded, ${skipped} skipped, ${failed} failed.`)
      if (this.#failures.length > 0) {
        this.#out.line(`Failed (${this.#failures.length}):`)
        // By name, not in the order they happened to finish: a re-run's summary reads the same.
        const failures = [...this.#failures].sort((a, b) => (a.item < b.item ? -1 : a.item > b.item ? 1 : 0))
        for (const { item, reason } of failures) this.#out.line(`  ${item}: ${reason}`)
      }
    }
    return { ...this.#counts }
  }
}
