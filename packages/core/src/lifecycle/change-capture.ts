import { sql, type Kysely } from 'kysely'
import { TenantryError } from '../errors.js'
import { quoteReportedName } from '../identifiers.js'
import type { EngineHandle } from '../engines/engine.js'
import { POSTGRES_CAPTURE_SCHEMA, SQLITE_CAPTURE_CHANGES, SQLITE_CAPTURE_STATE } from './capture-names.js'
import type { TenantTable } from './tenant-tables.js'

/** Changed rows, by table: the primary keys written since the last `ack`, and the last change read. */
export interface CapturedChanges {
  keys: Map<string, unknown[][]>
  /** The highest change number read; `ack(upTo)` forgets up to it. */
  upTo: number
  count: number
}

/**
 * Change capture on the SOURCE of a live move: triggers on each of the tenant's tables write
 * the primary key of every row inserted, updated or deleted into a capture table, so that the
 * move can copy a snapshot while writes go on and then re-read just the rows written meanwhile.
 * `freeze` turns the same triggers into a refusal (`TENANT_MOVING`): a write from any process
 * (another server, SQL-over-HTTP's executor, a handle older than the flip) fails and is retried
 * by its caller, never lost.
 *
 * - SQLite: the capture tables and triggers live in the tenant's file (and go with it).
 * - Postgres: schema `tenantry_moves` in the database holding the tenant's tables, one
 *   SECURITY DEFINER trigger function (the app roles write through it and nothing else).
 *   Under row isolation the triggers are on the shared tables and key on `tenant_id`: a
 *   tenant without a move pays one index lookup per written row. The freeze takes the move's
 *   row, which every capturing write holds `FOR SHARE` until it commits: once frozen, no write
 *   that the move has not seen can still commit.
 */
export interface ChangeCapture {
  install(tables: readonly TenantTable[]): Promise<void>
  /** At most `limit` changes after the last `ack`, as keys per table (deduplicated). */
  take(limit: number): Promise<CapturedChanges>
  ack(upTo: number): Promise<void>
  /** Refuse every write from now on; resolves once writes that were running have committed. */
  freeze(): Promise<void>
  /**
   * Ends capture on a source that keeps serving (a move given up): triggers and bookkeeping
   * removed. Under row isolation the shared tables' triggers stay while other moves use them.
   */
  uninstall(): Promise<void>
  /**
   * Ends capture on a source that stops serving (the tenant moved away): its storage is about to
   * go. Under row isolation the tenant stays refused on the shared tables (a stale placement in
   * another process must not write rows nobody reads).
   */
  retire(): Promise<void>
}

/** The capture of `tenantId`'s tables on the engine behind `admin` (an admin handle of the source placement). */
export function changeCapture(admin: EngineHandle, tenantId: string): ChangeCapture {
  if (admin.engine === 'sqlite') return sqliteCapture(admin.db)
  if (admin.engine === 'postgres') return postgresCapture(admin, tenantId)
  throw new TenantryError('UNSUPPORTED_PLACEMENT', `Live moves are not offered for ${admin.engine} tenants`)
}

const MOVING_MESSAGE = 'TENANT_MOVING: this tenant is being moved; retry in a moment'
/** TRUNCATE fires no row triggers, so capture cannot see what it removed: refused while a move runs. */
export const TRUNCATE_MESSAGE = 'TENANT_MOVING: TRUNCATE is refused while the tenant is being moved (the move captures changed rows and TRUNCATE reports none): use DELETE, or run it once the move is done'

function assertKeys(tables: readonly TenantTable[]): void {
  const keyless = tables.filter((t) => t.primaryKey.length === 0).map((t) => `"${t.name}"`)
  if (keyless.length > 0) {
    throw new TenantryError('UNSUPPORTED_PLACEMENT', `A live move re-reads changed rows by primary key, and ${keyless.join(', ')} has none: add one (a migration) first`)
  }
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`
}

function grouped(rows: Array<{ seq: number | string; tbl: string; pk: unknown }>): CapturedChanges {
  const keys = new Map<string, Map<string, unknown[]>>()
  let upTo = 0
  for (const row of rows) {
    const key = (typeof row.pk === 'string' ? JSON.parse(row.pk) : row.pk) as unknown[]
    const seen = keys.get(row.tbl) ?? keys.set(row.tbl, new Map()).get(row.tbl)!
    seen.set(JSON.stringify(key), key)
    upTo = Math.max(upTo, Number(row.seq))
  }
  return { keys: new Map([...keys].map(([table, set]) => [table, [...set.values()]])), upTo, count: rows.length }
}

function sqliteCapture(db: Kysely<any>): ChangeCapture {
  const triggers = async (trx: Kysely<any>) =>
    (await sql<{ name: string }>`select name from sqlite_master where type = 'trigger' and name like '\_tenantry\_move\_%' escape '\\'`.execute(trx)).rows.map((r) => r.name)
  return {
    async install(tables) {
      assertKeys(tables)
      await db.transaction().execute(async (trx) => {
        await sql.raw(`create table if not exists ${SQLITE_CAPTURE_STATE} (id integer primary key check (id = 1), frozen integer not null default 0)`).execute(trx)
        await sql.raw(`insert or ignore into ${SQLITE_CAPTURE_STATE} (id, frozen) values (1, 0)`).execute(trx)
        await sql.raw(`create table if not exists ${SQLITE_CAPTURE_CHANGES} (seq integer primary key autoincrement, tbl text not null, pk text not null)`).execute(trx)
        for (const [i, table] of tables.entries()) {
          const name = quoteReportedName(table.name)
          const refuse = `select raise(abort, ${literal(MOVING_MESSAGE)}) where (select frozen from ${SQLITE_CAPTURE_STATE}) = 1;`
          const record = (row: 'new' | 'old') =>
            `insert into ${SQLITE_CAPTURE_CHANGES} (tbl, pk) values (${literal(table.name)}, json_array(${table.primaryKey.map((c) => `${row}.${quoteReportedName(c)}`).join(', ')}));`
          await sql.raw(`create trigger if not exists "_tenantry_move_${i}_i" after insert on ${name} begin ${refuse} ${record('new')} end`).execute(trx)
          await sql.raw(`create trigger if not exists "_tenantry_move_${i}_u" after update on ${name} begin ${refuse} ${record('old')} ${record('new')} end`).execute(trx)
          await sql.raw(`create trigger if not exists "_tenantry_move_${i}_d" after delete on ${name} begin ${refuse} ${record('old')} end`).execute(trx)
        }
      })
    },
    async take(limit) {
      const rows = (await sql<{ seq: number; tbl: string; pk: string }>`select seq, tbl, pk from ${sql.raw(SQLITE_CAPTURE_CHANGES)} order by seq limit ${limit}`.execute(db)).rows
      return grouped(rows)
    },
    async ack(upTo) {
      await sql`delete from ${sql.raw(SQLITE_CAPTURE_CHANGES)} where seq <= ${upTo}`.execute(db)
    },
    async freeze() {
      // Takes the write lock: a write transaction running now commits (captured) before it.
      await sql.raw(`update ${SQLITE_CAPTURE_STATE} set frozen = 1`).execute(db)
    },
    async uninstall() {
      await db.transaction().execute(async (trx) => {
        for (const name of await triggers(trx)) await sql.raw(`drop trigger if exists "${name}"`).execute(trx)
        await sql.raw(`drop table if exists ${SQLITE_CAPTURE_CHANGES}`).execute(trx)
        await sql.raw(`drop table if exists ${SQLITE_CAPTURE_STATE}`).execute(trx)
      })
    },
    async retire() {
      // The file goes next; until then (and in any handle still open on it) every write is refused.
      await sql.raw(`delete from ${SQLITE_CAPTURE_CHANGES}`).execute(db)
    },
  }
}

const PG_SETUP = `
create schema if not exists ${POSTGRES_CAPTURE_SCHEMA};
create table if not exists ${POSTGRES_CAPTURE_SCHEMA}.moves (tenant_id text primary key, state text not null);
create table if not exists ${POSTGRES_CAPTURE_SCHEMA}.changes (seq bigserial primary key, tenant_id text not null, tbl text not null, pk jsonb not null);
create index if not exists changes_tenant on ${POSTGRES_CAPTURE_SCHEMA}.changes (tenant_id, seq);
revoke all on schema ${POSTGRES_CAPTURE_SCHEMA} from public;
create or replace function ${POSTGRES_CAPTURE_SCHEMA}.capture() returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp as $capture$
declare
  r jsonb;
  o jsonb;
  tid text;
  st text;
  k jsonb := '[]'::jsonb;
  ok jsonb := '[]'::jsonb;
  i int;
begin
  if TG_OP = 'DELETE' then r := to_jsonb(OLD); else r := to_jsonb(NEW); end if;
  tid := coalesce(nullif(TG_ARGV[0], ''), r->>'tenant_id');
  select m.state into st from ${POSTGRES_CAPTURE_SCHEMA}.moves m where m.tenant_id = tid for share;
  if st is null or st = 'removing' then return null; end if;
  if st <> 'capturing' then raise exception '${MOVING_MESSAGE}' using errcode = '55000'; end if;
  for i in 1 .. TG_NARGS - 1 loop k := k || jsonb_build_array(r -> TG_ARGV[i]); end loop;
  insert into ${POSTGRES_CAPTURE_SCHEMA}.changes (tenant_id, tbl, pk) values (tid, TG_TABLE_NAME, k);
  if TG_OP = 'UPDATE' then
    o := to_jsonb(OLD);
    for i in 1 .. TG_NARGS - 1 loop ok := ok || jsonb_build_array(o -> TG_ARGV[i]); end loop;
    if ok <> k then insert into ${POSTGRES_CAPTURE_SCHEMA}.changes (tenant_id, tbl, pk) values (tid, TG_TABLE_NAME, ok); end if;
  end if;
  return null;
end
$capture$;
create or replace function ${POSTGRES_CAPTURE_SCHEMA}.refuse_truncate() returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp as $refuse$
begin
  if exists (select 1 from ${POSTGRES_CAPTURE_SCHEMA}.moves m where m.state in ('capturing', 'frozen') and (TG_ARGV[0] = '' or m.tenant_id = TG_ARGV[0])) then
    raise exception '${TRUNCATE_MESSAGE}' using errcode = '55000';
  end if;
  return null;
end
$refuse$;
`

/** The trigger every captured table gets (one name: `create or replace` makes installs idempotent). */
const PG_TRIGGER = 'tenantry_move_capture'
/** Its statement-level companion, which refuses TRUNCATE (on shared tables: while any of their tenants moves). */
const PG_TRUNCATE_TRIGGER = 'tenantry_move_truncate'

function postgresCapture(admin: EngineHandle, tenantId: string): ChangeCapture {
  const db = admin.db
  const shared = admin.shared === true
  const qualified = (table: string) => (admin.schema ? `${quoteReportedName(admin.schema)}.${quoteReportedName(table)}` : quoteReportedName(table))
  const tableNames = async (trx: Kysely<any>) => {
    const schema = admin.schema ? sql`${admin.schema}` : sql`current_schema()`
    return (
      await sql<{ name: string }>`select c.relname as name from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
        where t.tgname = ${PG_TRIGGER} and n.nspname = ${schema}`.execute(trx)
    ).rows.map((r) => r.name)
  }
  const dropTriggers = async (trx: Kysely<any>) => {
    for (const table of await tableNames(trx)) {
      await sql.raw(`drop trigger if exists ${PG_TRIGGER} on ${qualified(table)}`).execute(trx)
      await sql.raw(`drop trigger if exists ${PG_TRUNCATE_TRIGGER} on ${qualified(table)}`).execute(trx)
    }
  }
  const capture = sql.raw(POSTGRES_CAPTURE_SCHEMA)
  return {
    async install(tables) {
      assertKeys(tables)
      await db.transaction().execute(async (trx) => {
        // One installer at a time per database (two moves on the shared row tables at once).
        await sql`select pg_advisory_xact_lock(hashtext('tenantry-move-capture'))`.execute(trx)
        await sql.raw(PG_SETUP).execute(trx)
        await sql`insert into ${capture}.moves (tenant_id, state) values (${tenantId}, 'capturing') on conflict (tenant_id) do update set state = 'capturing'`.execute(trx)
        await sql`delete from ${capture}.changes where tenant_id = ${tenantId}`.execute(trx)
        for (const table of tables) {
          const args = [shared ? '' : tenantId, ...table.primaryKey].map(literal).join(', ')
          await sql.raw(`create or replace trigger ${PG_TRIGGER} after insert or update or delete on ${qualified(table.name)} for each row execute function ${POSTGRES_CAPTURE_SCHEMA}.capture(${args})`).execute(trx)
          await sql.raw(`create or replace trigger ${PG_TRUNCATE_TRIGGER} before truncate on ${qualified(table.name)} for each statement execute function ${POSTGRES_CAPTURE_SCHEMA}.refuse_truncate(${literal(shared ? '' : tenantId)})`).execute(trx)
        }
      })
    },
    async take(limit) {
      const rows = (await sql<{ seq: string; tbl: string; pk: unknown }>`select seq, tbl, pk from ${capture}.changes where tenant_id = ${tenantId} order by seq limit ${limit}`.execute(db)).rows
      return grouped(rows)
    },
    async ack(upTo) {
      await sql`delete from ${capture}.changes where tenant_id = ${tenantId} and seq <= ${upTo}`.execute(db)
    },
    async freeze() {
      for (let attempt = 1; ; attempt++) {
        try {
          await db.transaction().execute(async (trx) => {
            // Waits for the writes holding the move's row (FOR SHARE) to commit; a long one makes it try again.
            await sql`select set_config('lock_timeout', '2000', true)`.execute(trx)
            await sql`update ${capture}.moves set state = 'frozen' where tenant_id = ${tenantId}`.execute(trx)
          })
          return
        } catch (error) {
          if ((error as { code?: string }).code !== '55P03' || attempt >= 5) throw error
        }
      }
    },
    async uninstall() {
      await db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext('tenantry-move-capture'))`.execute(trx)
        if (!(await exists(trx))) return
        await sql`delete from ${capture}.changes where tenant_id = ${tenantId}`.execute(trx)
        await sql`delete from ${capture}.moves where tenant_id = ${tenantId}`.execute(trx)
        const others = Number((await sql<{ n: string }>`select count(*) as n from ${capture}.moves`.execute(trx)).rows[0]!.n)
        // The tenant's own tables lose their triggers; shared ones once no other move (or mark) needs them.
        if (!shared || others === 0) await dropTriggers(trx)
        if (others === 0) await sql.raw(`drop schema if exists ${POSTGRES_CAPTURE_SCHEMA} cascade`).execute(trx)
      })
    },
    async retire() {
      await db.transaction().execute(async (trx) => {
        if (!(await exists(trx))) return
        await sql`delete from ${capture}.changes where tenant_id = ${tenantId}`.execute(trx)
        // Shared tables: the tenant stays frozen there. Its own schema or database goes next, triggers and all.
        if (shared) await sql`update ${capture}.moves set state = 'moved' where tenant_id = ${tenantId}`.execute(trx)
        else await sql`delete from ${capture}.moves where tenant_id = ${tenantId}`.execute(trx)
      })
    },
  }
}

async function exists(db: Kysely<any>): Promise<boolean> {
  return (await sql`select 1 from pg_namespace where nspname = ${POSTGRES_CAPTURE_SCHEMA}`.execute(db)).rows.length > 0
}

/**
 * Lets a tenant's rows be written again on shared tables it once moved away from (a move back
 * to row isolation on the same data source): its `moved` mark is removed. No-op elsewhere.
 */
export async function clearMovedMark(admin: EngineHandle, tenantId: string): Promise<void> {
  if (admin.engine !== 'postgres' || !admin.shared) return
  if (!(await exists(admin.db))) return
  await sql`delete from ${sql.raw(POSTGRES_CAPTURE_SCHEMA)}.moves where tenant_id = ${tenantId} and state = 'moved'`.execute(admin.db)
}

/**
 * Deletes a row tenant's rows from the shared tables (children first) in one transaction that
 * holds its capture mark at `removing` (its own deletes pass the triggers; a stale writer
 * elsewhere waits on the mark, then finds it `moved` and is refused). @internal
 */
export async function removeSharedRows(admin: EngineHandle, tenantId: string, tables: readonly TenantTable[]): Promise<void> {
  const capture = sql.raw(POSTGRES_CAPTURE_SCHEMA)
  const marked = await exists(admin.db)
  await admin.db.transaction().execute(async (trx) => {
    // RLS is forced on the admin too: it sees the tenant's rows once it names the tenant.
    await sql`select set_config('tenantry.tenant_id', ${tenantId}, true)`.execute(trx)
    if (marked) await sql`update ${capture}.moves set state = 'removing' where tenant_id = ${tenantId}`.execute(trx)
    for (const table of [...tables].reverse()) await sql`delete from ${sql.id(admin.schema!, table.name)} where tenant_id = ${tenantId}`.execute(trx)
    if (marked) await sql`update ${capture}.moves set state = 'moved' where tenant_id = ${tenantId}`.execute(trx)
  })
}
