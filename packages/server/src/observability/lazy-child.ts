import type { FastifyBaseLogger } from 'fastify'

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
type Bindings = Record<string, unknown>
type Args = Parameters<FastifyBaseLogger['info']>

/**
 * `parent.child(bindings)`, made only when a line is about to be written. pino's `child`
 * rebuilds the level functions and serializes the bindings (a few µs): on a hot route whose
 * lines are below the configured level, that was paid on every request for nothing.
 * The lines it writes are those the real child would write.
 */
class LazyChild implements FastifyBaseLogger {
  readonly #parent: FastifyBaseLogger
  readonly #bindings: Bindings
  #child: FastifyBaseLogger | undefined

  constructor(parent: FastifyBaseLogger, bindings: Bindings) {
    this.#parent = parent
    this.#bindings = bindings
  }

  #real(): FastifyBaseLogger {
    // Of a lazy parent, the real child of its real logger (its own `child` would be lazy again).
    const parent = this.#parent instanceof LazyChild ? this.#parent.#real() : this.#parent
    return (this.#child ??= parent.child(this.#bindings))
  }

  #log(level: Level, args: Args): void {
    if (this.#child) return (this.#child[level] as (...a: Args) => void)(...args)
    if (!this.isLevelEnabled(level)) return
    ;(this.#real()[level] as (...a: Args) => void)(...args)
  }

  get level(): string {
    return (this.#child ?? this.#parent).level
  }

  set level(level: string) {
    this.#real().level = level
  }

  fatal(...args: Args): void {
    this.#log('fatal', args)
  }
  error(...args: Args): void {
    this.#log('error', args)
  }
  warn(...args: Args): void {
    this.#log('warn', args)
  }
  info(...args: Args): void {
    this.#log('info', args)
  }
  debug(...args: Args): void {
    this.#log('debug', args)
  }
  trace(...args: Args): void {
    this.#log('trace', args)
  }
  silent(): void {}

  /** As pino's: whether a line at `level` would be written. */
  isLevelEnabled(level: string): boolean {
    return isLevelEnabled(this.#child ?? this.#parent, level)
  }

  child(bindings: Bindings, options?: Parameters<FastifyBaseLogger['child']>[1]): FastifyBaseLogger {
    return options === undefined ? new LazyChild(this, bindings) : this.#real().child(bindings, options)
  }
}

/** A child logger of `parent` with `bindings`, created only if a line at an enabled level is written. */
export function lazyChild(parent: FastifyBaseLogger, bindings: Bindings): FastifyBaseLogger {
  return new LazyChild(parent, bindings)
}

/** Whether `logger` would write a line at `level` (true for a logger that cannot tell). */
export function isLevelEnabled(logger: FastifyBaseLogger, level: string): boolean {
  const enabled = logger as { isLevelEnabled?: (level: string) => boolean }
  return enabled.isLevelEnabled ? enabled.isLevelEnabled(level) : true
}
