/**
 * What raw SQL over HTTP needs to know about a SQL text before SQLite compiles it, found by a
 * tokenizer that follows SQLite's own (tokenize.c): where one statement ends (`sequence`
 * requests), and which parameters a statement has, by index (better-sqlite3 exposes neither
 * the tail of a prepared statement nor `sqlite3_bind_parameter_name`).
 *
 * Nothing here decides what may run: every piece it finds is compiled by SQLite and checked
 * by the statement guard. A mistake here can only make a statement fail (SQLite refuses a
 * piece holding two statements; a wrong parameter count is a binding error), never let one
 * through unchecked.
 */

/** One token of SQL text. `text` is the source slice. */
export interface SqlToken {
  kind: 'space' | 'comment' | 'string' | 'quoted' | 'word' | 'variable' | 'semicolon' | 'other'
  text: string
  start: number
}

const SPACE = /[ \t\n\f\r]/
/** SQLite's IdChar: letters, digits, `_`, `$` and every non-ASCII character. */
const ID_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/

/** SQL text as SQLite's tokenizer splits it (close enough for statement ends and parameters). */
export function sqlTokens(sql: string): SqlToken[] {
  const tokens: SqlToken[] = []
  let i = 0
  const push = (kind: SqlToken['kind'], end: number) => {
    tokens.push({ kind, text: sql.slice(i, end), start: i })
    i = end
  }
  while (i < sql.length) {
    const c = sql[i]!
    if (SPACE.test(c)) {
      let end = i + 1
      while (end < sql.length && SPACE.test(sql[end]!)) end++
      push('space', end)
    } else if (sql.startsWith('--', i)) {
      const nl = sql.indexOf('\n', i)
      push('comment', nl === -1 ? sql.length : nl + 1)
    } else if (sql.startsWith('/*', i)) {
      const close = sql.indexOf('*/', i + 2)
      push('comment', close === -1 ? sql.length : close + 2)
    } else if (c === "'" || c === '"' || c === '`' || c === '[') {
      const closer = c === '[' ? ']' : c
      let end = i + 1
      for (;;) {
        const at = sql.indexOf(closer, end)
        if (at === -1) {
          end = sql.length
          break
        }
        // A doubled quote is the quote itself (brackets have no escape).
        if (closer !== ']' && sql[at + 1] === closer) {
          end = at + 2
          continue
        }
        end = at + 1
        break
      }
      push(c === "'" ? 'string' : 'quoted', end)
    } else if (c === ';') {
      push('semicolon', i + 1)
    } else if (c === '?') {
      let end = i + 1
      while (end < sql.length && /[0-9]/.test(sql[end]!)) end++
      push('variable', end)
    } else if (c === ':' || c === '@' || c === '#' || c === '$') {
      // `:name`, `@name`, `#name`, `$name`, with Tcl's `::` and `(suffix)` forms.
      let end = i + 1
      let n = 0
      while (end < sql.length) {
        const ch = sql[end]!
        if (ID_CHAR.test(ch)) {
          n++
          end++
        } else if (ch === '(' && n > 0) {
          end++
          while (end < sql.length && !SPACE.test(sql[end]!) && sql[end] !== ')') end++
          if (sql[end] === ')') end++
          break
        } else if (ch === ':' && sql[end + 1] === ':') end += 2
        else break
      }
      push(n > 0 ? 'variable' : 'other', n > 0 ? end : i + 1)
    } else if (ID_CHAR.test(c)) {
      let end = i + 1
      while (end < sql.length && ID_CHAR.test(sql[end]!)) end++
      push('word', end)
    } else push('other', i + 1)
  }
  return tokens
}

/** Tokens that carry meaning (no whitespace, no comments). */
const meaningful = (t: SqlToken) => t.kind !== 'space' && t.kind !== 'comment'

/**
 * Splits a script into statements where SQLite's `sqlite3_complete` would: at each `;` outside
 * strings, quoted names and comments, except inside the `BEGIN … END` body of a
 * `CREATE [TEMP] TRIGGER` (a trigger is refused by the guard anyway, as one piece). Pieces
 * holding only whitespace, comments or `;` are left out; each piece keeps its own `;`.
 */
export function splitStatements(sql: string): string[] {
  const pieces: string[] = []
  let start = 0
  let words: string[] = []
  let inTrigger = false
  let sawContent = false
  for (const token of sqlTokens(sql)) {
    if (token.kind === 'semicolon') {
      // Inside a trigger body, a `;` ends the statement only right after its `END`.
      if (inTrigger && words[words.length - 1] !== 'END') {
        words.push(';')
        continue
      }
      const end = token.start + 1
      if (sawContent) pieces.push(sql.slice(start, end))
      start = end
      words = []
      inTrigger = false
      sawContent = false
      continue
    }
    if (!meaningful(token)) continue
    sawContent = true
    words.push(token.kind === 'word' ? token.text.toUpperCase() : token.text)
    if (words[0] === 'CREATE' && !inTrigger) {
      const kind = words[1] === 'TEMP' || words[1] === 'TEMPORARY' ? words[2] : words[1]
      if (kind === 'TRIGGER') inTrigger = true
    }
  }
  if (sawContent) pieces.push(sql.slice(start))
  return pieces
}

/** SQLite's limit on a `?NNN` index (SQLITE_MAX_VARIABLE_NUMBER). */
const MAX_VARIABLE_NUMBER = 32766

/**
 * The parameters of one statement by index, as SQLite numbers them
 * (`sqlite3ExprAssignVarNumber`): element `i` is the name of parameter `i + 1`
 * (`sqlite3_bind_parameter_name`), or `null` for a bare `?` and for indexes no token names
 * (the gap below `?5`). `?` takes the next index; `?NNN` is index NNN; a name takes the next
 * index the first time and the same index after.
 */
export function sqlParameters(sql: string): Array<string | null> {
  return parameterTable(sql).names
}

function parameterTable(sql: string): { names: Array<string | null>; written: boolean[] } {
  const names: Array<string | null> = []
  /** Whether a token stands for the index (a gap below `?5` has none). */
  const written: boolean[] = []
  const byName = new Map<string, number>()
  let count = 0
  const grow = (to: number) => {
    while (names.length < to) {
      names.push(null)
      written.push(false)
    }
  }
  for (const token of sqlTokens(sql)) {
    if (token.kind !== 'variable') continue
    const text = token.text
    let index: number
    if (text === '?') index = ++count
    else if (text.startsWith('?')) {
      index = Number(text.slice(1))
      if (!Number.isInteger(index) || index < 1 || index > MAX_VARIABLE_NUMBER) continue // SQLite refuses it when compiling
      count = Math.max(count, index)
      if (!byName.has(text)) byName.set(text, index)
    } else {
      const known = byName.get(text)
      index = known ?? ++count
      if (known === undefined) byName.set(text, index)
    }
    grow(index)
    written[index - 1] = true
    if (text !== '?' && names[index - 1] === null) names[index - 1] = text
  }
  grow(count)
  return { names, written }
}

/** Why values could not be bound to a statement's parameters (the client's mistake). */
export class BindingError extends RangeError {
  override readonly name = 'BindingError'
}

/**
 * The values for a statement's parameters, bound the way SQLite (and libSQL's server) binds
 * them, in the shape better-sqlite3 takes: positional value `i` binds parameter index `i + 1`
 * whatever its form (`?`, `?NNN`, `:a`…); a named value binds every parameter of that name,
 * given with its prefix (`:a`) or without (`a`, and `1` for `?1`). Both may be mixed; a
 * parameter given both ways takes the named value (the Hrana spec's rule).
 *
 * better-sqlite3 binds a plain array only to parameters without a name and an object by name
 * without its first character, so the result is: the values of the unnamed indexes in order,
 * then one object keyed that way. A parameter the text names but no value binds is an error
 * (NULL with `unboundIsNull`, as SQLite leaves it), as are values no parameter takes; an index
 * no token names (the gap below `?5`) is NULL.
 */
export function bindParameters(
  sql: string,
  args: readonly unknown[],
  named?: Readonly<Record<string, unknown>>,
  options: { unboundIsNull?: boolean } = {},
): unknown[] {
  const { names, written } = parameterTable(sql)
  if (args.length > names.length) {
    throw new BindingError(`The statement has ${names.length} parameter${names.length === 1 ? '' : 's'} but ${args.length} positional values were given`)
  }
  const values = new Map<number, unknown>(args.map((value, i) => [i + 1, value]))
  for (const [key, value] of Object.entries(named ?? {})) {
    let found = false
    names.forEach((name, i) => {
      if (name === null || (name !== key && name.slice(1) !== key)) return
      // Given both ways, the named value wins (Hrana's rule).
      values.set(i + 1, value)
      found = true
    })
    if (!found) throw new BindingError(`The statement has no parameter named ${JSON.stringify(key)}`)
  }
  const anonymous: unknown[] = []
  const byKey: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  let anyNamed = false
  for (const [i, name] of names.entries()) {
    if (!values.has(i + 1) && written[i] && !options.unboundIsNull) throw new BindingError(`No value was given for parameter ${name ?? `?${i + 1} (the ${ordinal(i + 1)} one)`}`)
    const value = values.has(i + 1) ? values.get(i + 1) : null
    if (name === null) {
      anonymous.push(value)
      continue
    }
    const key = name.slice(1)
    // `:a` and `@a` (or `?1` and `:1`) are different parameters that better-sqlite3 binds from one key.
    if (key in byKey && byKey[key] !== value) throw new BindingError(`Parameters named like ${name} must have the same value: give them different names`)
    byKey[key] = value
    anyNamed = true
  }
  return anyNamed ? [...anonymous, byKey] : anonymous
}

function ordinal(n: number): string {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th')
  return `${n}${suffix}`
}

/** How a `BEGIN` statement asks to start its transaction, or `undefined` for any other statement. */
export function beginMode(sql: string): { mode: 'DEFERRED' | 'IMMEDIATE' | 'EXCLUSIVE' | undefined; readonly: boolean } | undefined {
  const words = sqlTokens(sql)
    .filter(meaningful)
    .map((t) => (t.kind === 'word' ? t.text.toUpperCase() : t.text))
  if (words[words.length - 1] === ';') words.pop()
  if (words[0] !== 'BEGIN') return undefined
  let i = 1
  const mode = words[i] === 'DEFERRED' || words[i] === 'IMMEDIATE' || words[i] === 'EXCLUSIVE' ? (words[i++] as 'DEFERRED' | 'IMMEDIATE' | 'EXCLUSIVE') : undefined
  let name: string | undefined
  if (words[i] === 'TRANSACTION') {
    i++
    // SQLite's grammar: `BEGIN [mode] [TRANSACTION [name]]`.
    if (i < words.length) name = words[i++]
  }
  // `BEGIN TRANSACTION READONLY` is libSQL's read transaction; SQLite reads READONLY as the transaction's name.
  return i === words.length ? { mode, readonly: mode === undefined && name === 'READONLY' } : undefined
}

/**
 * A transaction's start with a write intent (`BEGIN IMMEDIATE`, `BEGIN EXCLUSIVE`, libSQL's
 * `BEGIN TRANSACTION READONLY`), which a read-only session runs as a deferred `BEGIN`:
 * `@libsql/client`'s `transaction()` (and drizzle and Kysely on top of it) sends `BEGIN
 * IMMEDIATE` by default.
 */
export function isBeginWithMode(sql: string): boolean {
  const begin = beginMode(sql)
  return begin !== undefined && (begin.mode === 'IMMEDIATE' || begin.mode === 'EXCLUSIVE' || begin.readonly)
}
