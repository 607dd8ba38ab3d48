import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { tempDir } from '../../testing/index.js'
import { listChains, parseWalHeader, readWalCommits, restoreChain, WalShipper } from './wal-archive.js'

// Issue 13, point-in-time restore: WAL frames shipped with the time they were seen, and an image
// of the database at any shipped moment rebuilt from a base and those frames.

describe('WAL archive of one SQLite file', () => {
  let dir: ReturnType<typeof tempDir>
  let path: string
  let archive: string
  let writer: Database.Database
  let clock: number
  let shipper: WalShipper

  beforeEach(() => {
    dir = tempDir()
    path = join(dir.path, 'tenant.sqlite')
    archive = join(dir.path, 'wal')
    writer = new Database(path)
    writer.pragma('journal_mode = WAL')
    writer.pragma('wal_autocheckpoint = 0')
    writer.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)')
    writer.exec('CREATE INDEX notes_body ON notes (body)')
    clock = 1000
    shipper = new WalShipper({ path, archive, now: () => clock })
  })
  afterEach(() => {
    shipper.close()
    writer.close()
    dir.cleanup()
  })

  const insert = (id: number) => writer.prepare('INSERT INTO notes (id, body) VALUES (?, ?)').run(id, `note ${id} ${'x'.repeat(200)}`)
  const rowsAt = (at: number): number[] => {
    const chain = [...listChains(archive)].reverse().find((c) => c.from <= at && at <= c.to)
    if (!chain) throw new Error(`no chain covers ${at}`)
    const out = join(dir.path, `image-${at}-${Math.random().toString(36).slice(2)}.sqlite`)
    restoreChain(chain, at, out)
    const db = new Database(out, { readonly: true })
    try {
      return db.prepare('SELECT id FROM notes ORDER BY id').all().map((r) => (r as { id: number }).id)
    } finally {
      db.close()
    }
  }

  it('restores each shipped moment to exactly the rows committed by then, across WAL restarts', () => {
    insert(1)
    expect(shipper.ship()).toMatchObject({ rebased: true }) // t=1000: the base holds row 1
    clock = 2000
    insert(2)
    insert(3)
    const second = shipper.ship()
    expect(second).toMatchObject({ rebased: false, commits: 2, checkpointed: true })
    const saltsBefore = parseWalHeader(readFileSync(`${path}-wal`))!.salt1
    clock = 3000
    // The WAL was fully checkpointed by the shipper: this write restarts it (a new generation).
    insert(4)
    expect(parseWalHeader(readFileSync(`${path}-wal`))!.salt1).toBe((saltsBefore + 1) >>> 0)
    expect(shipper.ship()).toMatchObject({ rebased: false, commits: 1, chain: second.chain })
    clock = 4000
    expect(shipper.ship()).toMatchObject({ commits: 0 }) // a quiet tick extends the window
    clock = 5000
    writer.prepare('DELETE FROM notes WHERE id = 2').run()
    insert(5)
    shipper.ship()

    expect(listChains(archive)).toHaveLength(1)
    expect(rowsAt(1000)).toEqual([1])
    expect(rowsAt(1999)).toEqual([1])
    expect(rowsAt(2000)).toEqual([1, 2, 3])
    expect(rowsAt(3500)).toEqual([1, 2, 3, 4])
    expect(rowsAt(4000)).toEqual([1, 2, 3, 4])
    expect(rowsAt(5000)).toEqual([1, 3, 4, 5])
    expect(() => rowsAt(999)).toThrow(/no chain/)
  })

  it('never returns frames after the last complete commit (a transaction cut short, a torn frame, a bad checksum)', () => {
    shipper.ship()
    insert(1)
    const oneCommit = readFileSync(`${path}-wal`)
    insert(2) // several frames (table and index pages), the last one marked as the commit
    const twoCommits = readFileSync(`${path}-wal`)
    const header = parseWalHeader(twoCommits)!
    const all = readWalCommits(twoCommits, header)
    const first = readWalCommits(oneCommit, header)
    const frameBytes = 24 + header.pageSize
    expect(all.frames.length - first.frames.length).toBeGreaterThan(1)
    expect(all.frames.at(-1)!.commitSize).toBeGreaterThan(0)
    // The second transaction without its commit frame, then with half of it.
    const uncommitted = twoCommits.subarray(0, twoCommits.length - frameBytes)
    expect(readWalCommits(uncommitted, header).frames).toHaveLength(first.frames.length)
    expect(readWalCommits(twoCommits.subarray(0, twoCommits.length - frameBytes / 2), header).frames).toHaveLength(first.frames.length)
    // A flipped byte in the second transaction's first page breaks the checksum chain there.
    const damaged = Buffer.from(twoCommits)
    damaged[first.end.offset + 24 + 100]! ^= 0xff
    expect(readWalCommits(damaged, header)).toEqual(first)
  })

  it('a checkpoint by another connection loses nothing; a shipper started again begins a new chain, and the gap is not restorable', () => {
    insert(1)
    shipper.ship()
    clock = 2000
    insert(2)
    // Another connection checkpoints frames not shipped yet: the shipper's read hold stops it short.
    const other = new Database(path, { timeout: 0 })
    other.pragma('wal_checkpoint(TRUNCATE)')
    other.close()
    insert(3)
    expect(shipper.ship()).toMatchObject({ rebased: false, commits: 2 })
    expect(rowsAt(2000)).toEqual([1, 2, 3])

    // The process stops; writes go on meanwhile (and a checkpoint and restart); a new shipper starts a new chain.
    shipper.close()
    clock = 3000
    insert(4)
    writer.pragma('wal_checkpoint(TRUNCATE)')
    insert(5)
    clock = 4000
    shipper = new WalShipper({ path, archive, now: () => clock })
    expect(shipper.ship()).toMatchObject({ rebased: true })
    clock = 5000
    insert(6)
    shipper.ship()
    expect(listChains(archive).map((c) => [c.from, c.to])).toEqual([
      [1000, 2000],
      [4000, 5000],
    ])
    expect(rowsAt(4000)).toEqual([1, 2, 3, 4, 5])
    expect(rowsAt(5000)).toEqual([1, 2, 3, 4, 5, 6])
    expect(() => rowsAt(3000)).toThrow(/no chain/)
  })
})
