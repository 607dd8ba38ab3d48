import { sql, type Expression, type RawBuilder, type SqlBool } from 'kysely'

/**
 * Longest `?q=` accepted. Matching costs up to the text's length times the needle's on some
 * engines; a bounded needle bounds it (issue 8: a 5,000-character `q` held the server 20 s).
 */
export const SEARCH_MAX_LENGTH = 200

/** Letters whose lower case is not their fold (Unicode CaseFolding): Greek final sigma is a σ. */
const EXTRA_FOLDS: Readonly<Record<string, string>> = { 'ς': 'σ' }
const FOLDED_FROM: Readonly<Record<string, readonly string[]>> = { 'σ': ['ς'] }

/**
 * `q` folded for matching: NFC, and each character lower-cased where its lower case is one
 * character (so `ÄRZTE` is `ärzte`, while `İ`, whose lower case is two characters, stays itself),
 * then Greek final sigma folded to σ. The same fold is applied to the column in SQL.
 */
export function foldSearch(q: string): string {
  let out = ''
  for (const c of q.normalize('NFC')) {
    const lower = c.toLowerCase()
    const one = [...lower].length === 1 ? lower : c
    out += EXTRA_FOLDS[one] ?? one
  }
  return out
}

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

/**
 * `?q=`: whether any of `columns` contains `q`, Unicode case-insensitively, on the tenant's
 * engine. Both sides are folded the same way (`lower()` plus `replace()` of the needle's
 * non-ASCII letters), then found with the engine's substring search (`instr` on SQLite,
 * `strpos` on Postgres), whose cost is linear in the text for a bounded needle, unlike
 * `LIKE '%…%'`, which backtracks. Other engines get `lower(…) LIKE`.
 */
export function searchCondition(engine: string, columns: readonly string[], q: string): Expression<SqlBool> {
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
  return columns.map(contains).reduce((either, next) => sql<SqlBool>`(${either} or ${next})`)
}
