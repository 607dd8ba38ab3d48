import Database from 'better-sqlite3'
import { sql, type Expression, type RawBuilder, type SqlBool } from 'kysely'
import { foldSearch } from '@tenantry/client/semantics'
import { SEARCH_TOKENIZER, searchIndexTable } from '../search-index/search-index.js'

/**
 * `q` of the collections (in-process and the data API): how a search is matched on each engine,
 * with or without the trigram index Tenantry keeps. The bound and fold are shared with the
 * browser SDK's local backend.
 */
export { foldSearch, SEARCH_MAX_LENGTH } from '@tenantry/client/semantics'

/** Letters that fold to another (Unicode CaseFolding): a final sigma is a σ, as `foldSearch` has it. */
const FOLDED_FROM: Readonly<Record<string, readonly string[]>> = { 'σ': ['ς'] }

/**
 * The characters a column's text must have folded to match `needle`: SQLite's `lower()` folds
 * only A–Z, so each non-ASCII letter of the needle gets the letters that fold to it (its upper
 * case, a final sigma) replaced by it. Linear in the text, one pass per distinct letter (at
 * most `SEARCH_MAX_LENGTH`).
 */
function nonAsciiFolds(needle: string): Array<[from: string, to: string]> {
  const pairs = new Map<string, string>()
  for (const c of needle) {
    if (c.charCodeAt(0) < 0x80) continue
    for (const other of [c.toUpperCase(), ...(FOLDED_FROM[c] ?? [])]) {
      if (other !== c && [...other].length === 1 && foldSearch(other) === c) pairs.set(other, c)
    }
  }
  return [...pairs]
}

/** How `?q=` may use the search index Tenantry keeps for the collection's table (see `searchIndexStep` in core). */
export interface SearchIndexUse {
  /** The collection's table. */
  table: string
}

/** Shortest run of needle characters a trigram index can look up. */
const TRIGRAM = 3

/**
 * `?q=`: whether any of `columns` contains `q`, Unicode case-insensitively, on the tenant's
 * engine. Both sides are folded the same way (`lower()` plus `replace()` of the needle's
 * non-ASCII letters), then found with the engine's substring search (`instr` on SQLite,
 * `strpos` on Postgres), whose cost is linear in the text for a bounded needle, unlike
 * `LIKE '%…%'`, which backtracks. Other engines get `lower(…) LIKE`.
 *
 * With `index`, the condition is first narrowed by the table's trigram index (FTS5 `MATCH` on
 * SQLite, `lower(column) LIKE` under `pg_trgm` on Postgres) and the exact condition above
 * decides among the candidates: the narrowing only ever keeps a superset of the rows the exact
 * condition matches, so results are the same with or without the index. A needle with no run
 * of 3 characters the index can look up (short ones, for one) scans, under the deadline.
 */
export function searchCondition(engine: string, columns: readonly string[], q: string, index?: SearchIndexUse): Expression<SqlBool> {
  const needle = foldSearch(q)
  const folds = nonAsciiFolds(needle)
  const folded = (column: string) =>
    folds.reduce<RawBuilder<string>>((text, [from, to]) => sql`replace(${text}, ${from}, ${to})`, sql`lower(${sql.ref(column)})`)
  const contains = (column: string): RawBuilder<SqlBool> => {
    if (engine === 'sqlite') return sql<SqlBool>`instr(${folded(column)}, ${needle}) > 0`
    if (engine === 'postgres') return sql<SqlBool>`strpos(${folded(column)}, ${needle}) > 0`
    const pattern = `%${needle.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
    return sql<SqlBool>`${folded(column)} like ${pattern} escape '\\'`
  }
  if (columns.length === 0) return sql<SqlBool>`1 = 0`
  const exact = columns.map(contains).reduce((either, next) => sql<SqlBool>`(${either} or ${next})`)
  const narrow = index && indexNarrowing(engine, columns, needle, folds, index)
  return narrow ? sql<SqlBool>`(${narrow} and ${exact})` : exact
}

/** The index's superset of the rows that can match `needle`, or undefined when it cannot help. */
function indexNarrowing(
  engine: string,
  columns: readonly string[],
  needle: string,
  folds: ReadonlyArray<[from: string, to: string]>,
  index: SearchIndexUse,
): RawBuilder<SqlBool> | undefined {
  // The needle's characters a text character other than themselves can match: the exact
  // condition's `replace()` targets.
  const replaced = new Set(folds.map(([, to]) => to))
  if (engine === 'sqlite') {
    // FTS5 folds text and query alike with its own case folding (Unicode simple folding, from
    // its own tables). A character is looked up only where FTS5 folds every character the
    // exact condition treats as it to the same thing; the others split the needle into runs,
    // each of which must be in the row.
    const runs = splitRuns(needle, (c) => !replaced.has(c) || folds.every(([from, to]) => to !== c || ftsFold(from) === ftsFold(c)))
    if (runs.length === 0) return undefined
    // Distinct trigrams, each its own term, rather than the runs as phrases: a long phrase of
    // repeated trigrams (`aaaa…` in text of `aaaa…`) costs FTS5 time quadratic in the phrase.
    const colset = columns.map((c) => `"${c}"`).join(' ')
    const terms = trigramsOf(runs).map((t) => `"${t.replace(/"/g, '""')}"`)
    const match = `{${colset}} : (${terms.join(' AND ')})`
    const fts = sql.id(searchIndexTable(index.table))
    return sql<SqlBool>`${sql.ref(`${index.table}.rowid`)} in (select rowid from ${fts} where ${fts} match ${match})`
  }
  if (engine === 'postgres') {
    // `lower(column)` is what the GIN index holds. Where the exact condition also accepts
    // other characters (letters Postgres' `lower()` may not fold under the database's
    // locale), the pattern has `_`; pg_trgm looks up the runs of 3 or more literal characters.
    if (splitRuns(needle, (c) => !replaced.has(c)).length === 0) return undefined
    const pattern = `%${[...needle].map((c) => (replaced.has(c) ? '_' : /[\\%_]/.test(c) ? `\\${c}` : c)).join('')}%`
    return columns
      .map((column) => sql<SqlBool>`lower(${sql.ref(column)}) like ${pattern} escape '\\'`)
      .reduce((either, next) => sql<SqlBool>`(${either} or ${next})`)
  }
  return undefined
}

/** Trigrams a row must hold: distinct, at most `MAX_TRIGRAMS`, spread over the runs. */
function trigramsOf(runs: readonly string[]): string[] {
  const all = new Set<string>()
  for (const run of runs) {
    const chars = [...run]
    for (let i = 0; i + TRIGRAM <= chars.length; i++) all.add(chars.slice(i, i + TRIGRAM).join(''))
  }
  const distinct = [...all]
  if (distinct.length <= MAX_TRIGRAMS) return distinct
  const step = distinct.length / MAX_TRIGRAMS
  return Array.from({ length: MAX_TRIGRAMS }, (_, i) => distinct[Math.floor(i * step)]!)
}

/** Enough trigrams to be selective; each more costs a doclist read. */
const MAX_TRIGRAMS = 12

/** The maximal runs of `needle`'s characters that pass `usable`, of at least 3 characters. */
function splitRuns(needle: string, usable: (c: string) => boolean): string[] {
  const runs: string[] = []
  let run: string[] = []
  for (const c of [...needle, '']) {
    if (c !== '' && usable(c)) {
      run.push(c)
      continue
    }
    if (run.length >= TRIGRAM) runs.push(run.join(''))
    run = []
  }
  return runs
}

/**
 * How FTS5's trigram tokenizer folds one character, asked of SQLite itself (the same library
 * the executors run): an in-memory FTS5 table indexes it three times and its vocabulary shows
 * the folded trigram. Cached; at most one probe per distinct character ever searched.
 */
export function ftsFold(c: string): string {
  let folded = FTS_FOLDS.get(c)
  if (folded === undefined) {
    const probe = (ftsProbe ??= openProbe())
    probe.insert.run(c.repeat(TRIGRAM))
    const term = (probe.term.get() as { term: string } | undefined)?.term ?? c
    probe.clear.run()
    folded = [...term][0] ?? c
    if (FTS_FOLDS.size < 10_000) FTS_FOLDS.set(c, folded)
  }
  return folded
}

const FTS_FOLDS = new Map<string, string>()
let ftsProbe: ReturnType<typeof openProbe> | undefined

function openProbe() {
  const db = new Database(':memory:')
  db.exec(`create virtual table probe using fts5(x, tokenize='${SEARCH_TOKENIZER}'); create virtual table probe_terms using fts5vocab(probe, 'row')`)
  return {
    insert: db.prepare('insert into probe (x) values (?)'),
    term: db.prepare('select term from probe_terms limit 1'),
    clear: db.prepare('delete from probe'),
  }
}
