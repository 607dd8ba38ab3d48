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

/** Where one long operation on one tenant has got to: its step, and the work done in it (rows, changes). */
export interface WorkUpdate {
  step: string
  /** Work done in this step so far. */
  done?: number
  /** All the work of this step, where it is known: then the bar shows how much is left. */
  total?: number
  /** What this step counts, when it is not the operation's unit (a backup copies pages, then reads bytes). */
  unit?: string
}

/**
 * Progress of one long operation on one tenant (a move, an export, an import): the step it is
 * in and the work done in it. On a terminal, a live line on stderr drawn by `cli-progress`: the
 * step, a bar with done/total and time left where the total is known (otherwise the count), and
 * the rate. Off a terminal, one plain line on stderr per step; with `--json`, nothing. The
 * command prints its own summary after `stop()`.
 */
export class WorkProgress {
  readonly #out: Output
  readonly #json: boolean
  readonly #bar: cliProgress.SingleBar | undefined
  #step: string | undefined
  #stepStartedAt = performance.now()
  #running = false

  constructor(out: Output, options: { unit: string; json?: boolean }) {
    this.#out = out
    this.#json = Boolean(options.json)
    const terminal = out.terminal()
    if (terminal && !options.json) {
      this.#bar = new cliProgress.SingleBar(
        {
          stream: terminal,
          barsize: 30,
          hideCursor: true,
          clearOnComplete: true,
          fps: 10,
          // The total is known in some steps only: without it, no bar and no time left, only the count.
          format: (opts, params, payload: { step: string; speed: string; known: boolean; unit?: string }) => {
            const unit = payload.unit ?? options.unit
            if (!payload.known) return `${payload.step} | ${params.value} ${unit} | ${payload.speed}/s`
            const size = opts.barsize ?? 30
            const complete = Math.round(params.progress * size)
            const bar = (opts.barCompleteString ?? '').slice(0, complete) + (opts.barIncompleteString ?? '').slice(0, size - complete)
            const left = Number.isFinite(params.eta) && params.value > 0 ? `${params.eta}s left` : '-- left'
            return `${payload.step} ${bar} ${params.value}/${params.total} ${unit} | ${payload.speed}/s | ${left}`
          },
        },
        cliProgress.Presets.shades_classic,
      )
    }
  }

  update(update: WorkUpdate): void {
    const { done = 0, total } = update
    // Table names are whatever the tenant's migrations made: never a control character on the terminal.
    const step = safeText(update.step)
    if (step !== this.#step) {
      this.#step = step
      this.#stepStartedAt = performance.now()
      if (!this.#bar && !this.#json) this.#out.note(`  ${step}`)
    }
    if (!this.#bar) return
    const seconds = (performance.now() - this.#stepStartedAt) / 1000
    // A rate over the first moments of a step says nothing yet.
    const payload = { step, speed: seconds >= 0.25 ? (done / seconds).toFixed(done / seconds >= 100 ? 0 : 1) : '-', known: total !== undefined, ...(update.unit ? { unit: safeText(update.unit) } : {}) }
    const barTotal = total ?? Math.max(done, 1)
    if (!this.#running) {
      this.#running = true
      this.#bar.start(barTotal, done, payload)
    } else {
      this.#bar.setTotal(barTotal)
      this.#bar.update(done, payload)
    }
  }

  /** Clears the live line (the command prints its result next). */
  stop(): void {
    if (this.#running) this.#bar?.stop()
    this.#running = false
  }
}
