import { TenantryError } from '../errors.js'

/**
 * The portable file of one tenant (`tenantry tenant export`): gzip'd NDJSON, one JSON value
 * per line, so that `zcat file | head` shows what it holds and both ends stream it a line at a
 * time. The first line is the header, the last the end line (a file cut short has none and is
 * refused). Between them, in this order:
 *
 * - each table's rows, `{ "row": <table>, "values": [...] }`, values in the header's column
 *   order, tables parents first (the order an import inserts them in);
 * - each file, `{ "file": <path>, "size", "contentType", "modifiedAt" }`, followed by its
 *   bytes as `{ "data": <base64> }` lines of at most `FILE_CHUNK_BYTES` each.
 *
 * Values are typed so that a round trip between engines is lossless (see `encodeValue`).
 */
export const EXPORT_FORMAT = 'tenantry-export'
/** Bumped whenever a reader of an older version could misread the file; readers refuse versions they do not know. */
export const EXPORT_VERSION = 1
/** Raw bytes per `data` line of a file. */
export const FILE_CHUNK_BYTES = 48 * 1024

/**
 * A column's kind, the same whatever the engine declared: what a value must become on the
 * way in. `any` is SQLite's column without a declared type (values go as they are).
 */
export type ValueKind = 'integer' | 'real' | 'numeric' | 'boolean' | 'text' | 'timestamptz' | 'timestamp' | 'date' | 'json' | 'blob' | 'any'

export interface ExportColumn {
  name: string
  kind: ValueKind
  /** The type as the source engine declared it, for the reader's information. */
  declared: string
}

export interface ExportTable {
  name: string
  columns: ExportColumn[]
  /** Tables this one references (foreign keys), which come before it in the file. */
  references: string[]
}

export interface ExportHeader {
  format: typeof EXPORT_FORMAT
  version: number
  exportedAt: string
  tenant: { id: string; slug: string; name: string; status: string }
  source: { engine: string; isolation: string; dataSource: string }
  /** Every migration the tenant had, in order (the app's, then Tenantry's derived steps). */
  migrations: string[]
  tables: ExportTable[]
  /** The names of the tenant's secrets. Values never leave the catalog: set them again after an import. */
  secretNames: string[]
}

/** The last line: what the file holds, checked by the import. */
export interface ExportEnd {
  end: true
  rows: Record<string, number>
  files: number
  fileBytes: number
}

export type ExportLine =
  | { row: string; values: EncodedValue[] }
  | { file: string; size: number; contentType: string; modifiedAt: string }
  | { data: string }
  | ExportEnd

/**
 * A value in the file. JSON's own scalars stand for themselves; the rest are tagged objects:
 * `{ "$int": "<digits>" }` an integer beyond ±2^53, `{ "$bytes": "<base64>" }` a blob,
 * `{ "$json": <value> }` the content of a JSON column (so JSON `null` and SQL NULL differ).
 * Dates and times are ISO 8601 strings (`timestamptz` in UTC with `Z`, `timestamp` without a
 * zone, `date` as `YYYY-MM-DD`); booleans are `true`/`false` whatever the engine stores.
 */
export type EncodedValue = null | boolean | number | string | { $int: string } | { $bytes: string } | { $json: unknown }

/** The kind of a SQLite declared type (its affinity rules, plus the names Kysely writes). */
export function sqliteKind(declared: string): ValueKind {
  const t = declared.toUpperCase()
  if (t === '') return 'any'
  if (t.includes('BOOL')) return 'boolean'
  if (t.includes('JSON')) return 'json'
  if (t.includes('TIMESTAMPTZ') || (t.includes('TIMESTAMP') && t.includes('WITH TIME ZONE'))) return 'timestamptz'
  if (t.includes('TIMESTAMP') || t.includes('DATETIME')) return 'timestamp'
  if (t === 'DATE') return 'date'
  if (t.includes('INT')) return 'integer'
  if (t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT') || t.includes('UUID')) return 'text'
  if (t.includes('BLOB') || t.includes('BYTEA')) return 'blob'
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return 'real'
  if (t.includes('NUMERIC') || t.includes('DECIMAL')) return 'numeric'
  return 'any'
}

/** The kind of a Postgres type as `format_type` names it. */
export function postgresKind(declared: string): ValueKind {
  const t = declared.toLowerCase()
  if (t === 'boolean') return 'boolean'
  if (t === 'json' || t === 'jsonb') return 'json'
  if (t.startsWith('timestamp') && t.includes('with time zone')) return 'timestamptz'
  if (t.startsWith('timestamp')) return 'timestamp'
  if (t === 'date') return 'date'
  if (t === 'smallint' || t === 'integer' || t === 'bigint') return 'integer'
  if (t === 'real' || t === 'double precision') return 'real'
  if (t.startsWith('numeric')) return 'numeric'
  if (t === 'bytea') return 'blob'
  if (t.startsWith('character') || t === 'text' || t === 'uuid' || t === 'citext') return 'text'
  return 'any'
}

const INTEGER_TEXT = /^-?\d+$/

/** An integer read as text (SQLite's `CAST(… AS TEXT)`, Postgres's `bigint`): a number where exact, else `$int`. */
function encodeInteger(text: string): EncodedValue {
  const n = Number(text)
  return Number.isSafeInteger(n) ? n : { $int: text }
}

/**
 * One value as the source engine's driver returned it (with the selects `tableSelect` makes:
 * SQLite integers and Postgres dates, times and JSON come as text) → its form in the file.
 */
export function encodeValue(value: unknown, kind: ValueKind): EncodedValue {
  if (value === null || value === undefined) return null
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('base64') }
  if (typeof value === 'bigint') return encodeInteger(value.toString())
  switch (kind) {
    case 'boolean':
      if (typeof value === 'boolean') return value
      if (value === 0 || value === 1 || value === '0' || value === '1') return value === 1 || value === '1'
      break
    case 'integer':
      if (typeof value === 'string' && INTEGER_TEXT.test(value)) return encodeInteger(value)
      break
    case 'json':
      if (typeof value === 'string') {
        try {
          return { $json: JSON.parse(value) as unknown }
        } catch {
          return value // not JSON after all (SQLite keeps what it is given): kept as text
        }
      }
      return { $json: value }
  }
  if (value instanceof Date) return value.toISOString()
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TenantryError('INVALID_OPTION', `A ${kind} value is ${String(value)}, which the export format cannot hold`)
    return value
  }
  if (typeof value === 'string' || typeof value === 'boolean') return value
  return { $json: value }
}

/** A value from the file → what the target engine's driver binds for a column of `kind`. */
export function decodeValue(value: EncodedValue, kind: ValueKind, engine: string): unknown {
  if (value === null) return null
  if (typeof value === 'object') {
    if ('$bytes' in value && typeof value.$bytes === 'string') return Buffer.from(value.$bytes, 'base64')
    if ('$int' in value && typeof value.$int === 'string' && INTEGER_TEXT.test(value.$int)) return engine === 'sqlite' ? BigInt(value.$int) : value.$int
    if ('$json' in value) return JSON.stringify(value.$json)
    throw new TenantryError('INVALID_EXPORT', `Unknown value ${JSON.stringify(value).slice(0, 80)} in the export file`)
  }
  if (typeof value === 'boolean') {
    if (engine === 'sqlite') return value ? 1 : 0
    return kind === 'boolean' || kind === 'any' || kind === 'json' ? value : Number(value)
  }
  return value
}

/** Checks the first line of a file and returns it as a header, or refuses the file with `INVALID_EXPORT`. */
export function parseHeader(line: string | undefined, source: string): ExportHeader {
  let header: Partial<ExportHeader>
  try {
    header = JSON.parse(line ?? '') as Partial<ExportHeader>
  } catch {
    throw new TenantryError('INVALID_EXPORT', `${source} is not a Tenantry export: its first line is not a JSON header`)
  }
  if (header?.format !== EXPORT_FORMAT) {
    throw new TenantryError('INVALID_EXPORT', `${source} is not a Tenantry export: its header says format ${JSON.stringify(header?.format)}, not "${EXPORT_FORMAT}"`)
  }
  if (header.version !== EXPORT_VERSION) {
    throw new TenantryError(
      'INVALID_EXPORT',
      `${source} is a version ${JSON.stringify(header.version)} export; this Tenantry reads version ${EXPORT_VERSION} only (upgrade Tenantry to import it)`,
      { details: { version: header.version, supported: [EXPORT_VERSION] } },
    )
  }
  const ok =
    typeof header.tenant?.slug === 'string' &&
    Array.isArray(header.migrations) &&
    header.migrations.every((m) => typeof m === 'string') &&
    Array.isArray(header.tables) &&
    header.tables.every((t) => typeof t?.name === 'string' && Array.isArray(t.columns) && t.columns.every((c) => typeof c?.name === 'string' && typeof c.kind === 'string')) &&
    Array.isArray(header.secretNames)
  if (!ok) throw new TenantryError('INVALID_EXPORT', `${source} has a damaged header (tenant, migrations, tables or secretNames missing or malformed)`)
  return header as ExportHeader
}

/** One line of an export file. */
export function exportLine(value: ExportHeader | ExportLine): string {
  return `${JSON.stringify(value)}\n`
}
