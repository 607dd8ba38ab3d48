import { once } from 'node:events'
import type { Writable } from 'node:stream'

/** The client of a streamed answer went away (its connection closed) before the end. */
export class ReaderGone extends Error {
  override readonly name = 'ReaderGone'
}

/**
 * Newline-separated JSON (a `/v3/cursor` answer) written as its entries come, at the pace the
 * client reads. Lines are gathered into chunks rather than written one by one, which would
 * cost a stream write per row: the rows of one executor batch come within one turn of the
 * event loop and leave as one chunk at its end (`setImmediate`), and a chunk that reaches
 * `chunkBytes` is written at once, after which `write` waits until the client has read enough
 * (`drain`). So the answer holds at most about a chunk plus the stream's buffer, whatever the
 * result's size.
 */
export class LineWriter {
  #pending = ''
  #flushing: NodeJS.Immediate | undefined
  #waiting = false

  constructor(
    private readonly out: Writable,
    private readonly chunkBytes = 64 * 1024,
  ) {}

  /** Whether the writer waits for the client to read (a client that stopped reading holds it here). */
  get waiting(): boolean {
    return this.#waiting
  }

  /** Adds one line; rejects with `ReaderGone` once the client went away. */
  async write(value: unknown): Promise<void> {
    if (this.out.destroyed) throw new ReaderGone()
    this.#pending += `${JSON.stringify(value)}\n`
    if (this.#pending.length < this.chunkBytes) {
      this.#flushing ??= setImmediate(() => this.#flush())
      return
    }
    if (!this.#flush()) {
      this.#waiting = true
      await Promise.race([once(this.out, 'drain'), once(this.out, 'close')])
      this.#waiting = false
    }
    if (this.out.destroyed) throw new ReaderGone()
  }

  /** Writes what is gathered, and `last` if given, and ends the answer. */
  end(last?: unknown): void {
    clearImmediate(this.#flushing)
    this.#flushing = undefined
    const rest = this.#pending + (last === undefined ? '' : `${JSON.stringify(last)}\n`)
    this.#pending = ''
    if (!this.out.destroyed) this.out.end(rest)
  }

  /** Writes what is gathered; false when the stream asks to wait for `drain`. */
  #flush(): boolean {
    clearImmediate(this.#flushing)
    this.#flushing = undefined
    if (!this.#pending || this.out.destroyed) return true
    const chunk = this.#pending
    this.#pending = ''
    return this.out.write(chunk)
  }
}
