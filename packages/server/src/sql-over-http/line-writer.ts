import { once } from 'node:events'
import type { Writable } from 'node:stream'

/** The client of a streamed answer went away (its connection closed) before the end. */
export class ReaderGone extends Error {
  override readonly name = 'ReaderGone'
}

/** One item of a streamed answer, encoded: text (a JSON line) or bytes (a length-delimited protobuf message). */
export type ItemEncoder = (value: unknown) => string | Uint8Array

/** Newline-separated JSON, `/v3/cursor`'s encoding. */
export const jsonLine: ItemEncoder = (value) => `${JSON.stringify(value)}\n`

/**
 * A streamed answer (`/v3/cursor`: newline-separated JSON; `/v3-protobuf/cursor`:
 * length-delimited protobuf messages) written as its items come, at the pace the client
 * reads. Items are gathered into chunks rather than written one by one, which would cost a
 * stream write per row: the rows of one executor batch come within one turn of the event
 * loop and leave as one chunk at its end (`setImmediate`), and a chunk that reaches
 * `chunkBytes` is written at once, after which `write` waits until the client has read enough
 * (`drain`). So the answer holds at most about a chunk plus the stream's buffer, whatever the
 * result's size. One writer uses one encoder, so a chunk is all text or all bytes.
 */
export class LineWriter {
  #pending: Array<string | Uint8Array> = []
  #pendingBytes = 0
  #flushing: NodeJS.Immediate | undefined
  #waiting = false

  constructor(
    private readonly out: Writable,
    private readonly chunkBytes = 64 * 1024,
    private readonly encode: ItemEncoder = jsonLine,
  ) {}

  /** Whether the writer waits for the client to read (a client that stopped reading holds it here). */
  get waiting(): boolean {
    return this.#waiting
  }

  /** Adds one item; rejects with `ReaderGone` once the client went away. */
  async write(value: unknown): Promise<void> {
    if (this.out.destroyed) throw new ReaderGone()
    this.#add(value)
    if (this.#pendingBytes < this.chunkBytes) {
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
    if (last !== undefined) this.#add(last)
    const rest = this.#take()
    if (!this.out.destroyed) this.out.end(rest)
  }

  #add(value: unknown): void {
    const item = this.encode(value)
    this.#pending.push(item)
    this.#pendingBytes += item.length
  }

  /** What is gathered, as one chunk. */
  #take(): string | Buffer {
    const parts = this.#pending
    this.#pending = []
    this.#pendingBytes = 0
    if (parts.every((part) => typeof part === 'string')) return parts.join('')
    return Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : part)))
  }

  /** Writes what is gathered; false when the stream asks to wait for `drain`. */
  #flush(): boolean {
    clearImmediate(this.#flushing)
    this.#flushing = undefined
    if (!this.#pending.length || this.out.destroyed) return true
    return this.out.write(this.#take())
  }
}
