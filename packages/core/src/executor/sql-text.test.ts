import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { BindingError, bindParameters, isBeginWithMode, splitStatements, sqlParameters } from './sql-text.js'

const db = new Database(':memory:')
afterAll(() => db.close())

/** Runs `sql` on SQLite with the bindings built for it: SQLite itself is the oracle. */
const row = (sql: string, args: unknown[], named?: Record<string, unknown>) => db.prepare(sql).raw(true).get(...bindParameters(sql, args, named))

describe('parameters, bound as SQLite numbers them', () => {
  it('names every index as sqlite3_bind_parameter_name would', () => {
    expect(sqlParameters('SELECT ?, ?')).toEqual([null, null])
    expect(sqlParameters('SELECT ?2, ?1')).toEqual(['?1', '?2'])
    expect(sqlParameters('SELECT ?1, :a, ?')).toEqual(['?1', ':a', null])
    expect(sqlParameters('SELECT :a, @b, $c, :a')).toEqual([':a', '@b', '$c'])
    expect(sqlParameters('SELECT ?5')).toEqual([null, null, null, null, '?5'])
    expect(sqlParameters('SELECT :a, ?1')).toEqual([':a'])
    expect(sqlParameters("SELECT '?', \"?x\", [:a], `@b` -- :c\n /* $d */, $e::f(g)")).toEqual(['$e::f(g)'])
    expect(sqlParameters('SELECT a$b, x:y FROM t')).toEqual([':y'])
  })

  it('binds ?, ?NNN, :name, @name and $name, mixed, by position and by name', () => {
    expect(row('SELECT ?1', ['one'])).toEqual(['one'])
    expect(row('SELECT ?1, ?2', ['a', 'b'])).toEqual(['a', 'b'])
    expect(row('SELECT ?2, ?1', ['a', 'b'])).toEqual(['b', 'a'])
    expect(row('SELECT ?1, ?1, ?', ['a', 'b'])).toEqual(['a', 'a', 'b'])
    expect(row('SELECT ?1, :a', ['x', 'y'])).toEqual(['x', 'y'])
    expect(row('SELECT ?1, :a', ['x'], { a: 'y' })).toEqual(['x', 'y'])
    expect(row('SELECT ?1, :a', [], { '?1': 'x', ':a': 'y' })).toEqual(['x', 'y'])
    expect(row('SELECT ?1, :a', [], { 1: 'x', a: 'y' })).toEqual(['x', 'y'])
    expect(row('SELECT :a, @b, $c, :a', [1n, 2n, 3n])).toEqual([1n, 2n, 3n, 1n].map(Number))
    expect(row('SELECT ?3, ?', [1, 2, 3, 4])).toEqual([3, 4])
    expect(row('SELECT ?5', [null, null, null, null, 'five'])).toEqual(['five'])
    expect(row("SELECT '?', ?", ['q'])).toEqual(['?', 'q'])
    expect(row('SELECT ?, ?', ['x', 'y'])).toEqual(['x', 'y'])
  })

  it('refuses values that do not fit, with a clear message', () => {
    expect(() => bindParameters('SELECT ?1', ['a', 'b'])).toThrow(/1 parameter but 2/)
    expect(() => bindParameters('SELECT ?1, ?2', ['a'])).toThrow(/No value was given for parameter \?2/)
    expect(() => bindParameters('SELECT :a', [], { b: 1 })).toThrow(/no parameter named "b"/)
    expect(row('SELECT :a, ?', [1, 3], { a: 2 })).toEqual([2, 3])
    expect(() => bindParameters('SELECT :a, ?', [1], { a: 2 })).toThrow(/No value was given for parameter \?2 \(the 2nd one\)/)
    expect(() => bindParameters('SELECT :a, @a', [1, 2])).toThrow(BindingError)
    expect(bindParameters('SELECT :a, ?', [], undefined, { unboundIsNull: true })).toEqual([null, { a: null }])
  })
})

describe('splitting a script where SQLite would', () => {
  it('splits at semicolons outside strings, names and comments', () => {
    expect(splitStatements("SELECT 1; SELECT ';'; -- a ; comment\nSELECT \"a;b\" /* ; */ ;;  ")).toEqual([
      'SELECT 1;',
      " SELECT ';';",
      ' -- a ; comment\nSELECT "a;b" /* ; */ ;',
    ])
    expect(splitStatements('  ; -- nothing\n ;')).toEqual([])
    expect(splitStatements('SELECT 1')).toEqual(['SELECT 1'])
  })

  it('keeps a trigger body in one piece (the guard refuses it as a whole)', () => {
    const script = 'CREATE TEMP TRIGGER t AFTER INSERT ON x BEGIN UPDATE y SET a = 1; DELETE FROM z; END; SELECT 2'
    expect(splitStatements(script)).toEqual(['CREATE TEMP TRIGGER t AFTER INSERT ON x BEGIN UPDATE y SET a = 1; DELETE FROM z; END;', ' SELECT 2'])
    // Each piece is exactly one statement to SQLite.
    for (const piece of splitStatements('SELECT 1; SELECT 2 -- x\n; VALUES (3)')) expect(() => db.prepare(piece)).not.toThrow()
  })
})

describe('write-intent BEGINs', () => {
  it('are recognized in every spelling, and nothing else is', () => {
    for (const sql of ['BEGIN IMMEDIATE', 'begin exclusive transaction;', 'BEGIN TRANSACTION READONLY', '/* x */ BEGIN IMMEDIATE TRANSACTION', 'BEGIN IMMEDIATE TRANSACTION t1']) {
      expect(isBeginWithMode(sql), sql).toBe(true)
    }
    for (const sql of ['BEGIN', 'BEGIN DEFERRED', 'BEGIN TRANSACTION', 'BEGIN TRANSACTION t1', 'BEGIN IMMEDIATE; DELETE FROM t', 'COMMIT', "BEGIN IMMEDIATE 'x'", 'BEGIN IMMEDIATE TRANSACTION a b']) {
      expect(isBeginWithMode(sql), sql).toBe(false)
    }
  })
})
