/**
 * The messages between the executor (parent) and one executor process (child), sent over
 * Node's IPC channel with `serialization: 'advanced'` so that bigints and byte arrays pass
 * as they are. A child runs one request at a time, in the order received.
 */

/** A value bound to, or read from, a SQLite statement. Integers are bigints (64-bit safe). */
export type RawValue = null | bigint | number | string | Uint8Array

/** How a child opens a session's connection. */
export interface OpenParams {
  path: string
  readOnly: boolean
  busyTimeoutMs: number
  /** The tenant's storage quota in bytes, applied as `PRAGMA max_page_count`; null: no limit. */
  maxStorageBytes?: number | null
}

/** The caps one statement runs under, checked while its rows are read. */
export interface StatementCaps {
  maxRows: number
  maxResultBytes: number
  maxValueBytes: number
}

export type ChildRequest =
  | {
      id: number
      op: 'execute'
      session: number
      /** Present when the child has no connection for `session` yet. */
      open?: OpenParams
      sql: string
      args: RawValue[]
      namedArgs?: Record<string, RawValue>
      wantRows: boolean
      /**
       * `statement` (the default): `sql` is one statement. `sequence`: `sql` is a script, split
       * into statements that all pass the guard before the first runs, then run in order until
       * one fails; no rows come back. `describe`: `sql` is compiled and guarded, never run.
       */
      mode?: 'statement' | 'sequence' | 'describe'
      caps: StatementCaps
      /** Close the connection after the statement unless it left a transaction open. */
      closeIfIdle: boolean
    }
  | {
      id: number
      /**
       * Opens a cursor on one statement and answers its first batch of rows: the rest stay in
       * SQLite until `cursor-next` asks for them, so only a batch is ever held, here and in the
       * parent. Only a statement that reads and writes nothing streams; any other runs as
       * `execute` does (under `caps`) and answers in one batch, `done`.
       */
      op: 'cursor'
      session: number
      open?: OpenParams
      sql: string
      args: RawValue[]
      namedArgs?: Record<string, RawValue>
      /** `maxValueBytes` applies to every row; `maxRows`/`maxResultBytes` only to a statement that does not stream. */
      caps: StatementCaps
      batch: CursorBatch
      closeIfIdle: boolean
    }
  /** The next batch of the session's cursor. */
  | { id: number; op: 'cursor-next'; session: number; closeIfIdle: boolean }
  /** Stops the session's cursor before its end (a no-op when it has none). */
  | { id: number; op: 'cursor-close'; session: number; closeIfIdle: boolean }
  | { id: number; op: 'close'; session: number }

/** How much one answer of a cursor holds at most: whichever bound is reached first. */
export interface CursorBatch {
  maxRows: number
  maxBytes: number
}

/** Why a statement failed, as the child saw it. */
export type ChildFailureKind =
  /** The statement guard or SQLite refused the statement: the SQL's own fault; the session goes on. */
  | 'statement'
  /** A row, byte or value cap was reached. */
  | 'too-large'
  /** SQLite could not get memory under the process's limit. */
  | 'memory'
  /** Another connection holds the lock (SQLITE_BUSY / SQLITE_LOCKED). */
  | 'busy'

export type ChildResponse =
  | {
      id: number
      ok: true
      inTransaction: boolean
      columns: Array<{ name: string; type: string | null }>
      rows: RawValue[][]
      rowsAffected: number
      lastInsertRowid: bigint | null
      /** For `describe`: what SQLite compiled. */
      description?: StatementDescription
      /** For a cursor: the statement gave its last row (the cursor is closed in the process). */
      done?: boolean
    }
  | { id: number; ok: false; inTransaction: boolean; kind: ChildFailureKind; code: string; message: string }

/** A compiled statement, as `describe` reports it. */
export interface StatementDescription {
  /** Parameter names by index (`null` for a bare `?`). */
  params: Array<string | null>
  columns: Array<{ name: string; type: string | null }>
  isExplain: boolean
  isReadonly: boolean
}

/** What a child sends once it is ready for requests. */
export interface ChildReady {
  ready: true
}
