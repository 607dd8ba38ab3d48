import { closeSync, copyFileSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { TenantryError } from '../../errors.js'

/**
 * Continuous WAL capture of one SQLite database (point-in-time restore, issue #13): the idea of
 * Litestream, on SQLite's documented file formats (https://sqlite.org/fileformat2.html#walformat).
 *
 * An archive is a list of chains. A chain starts with a base image (a page-exact copy of the
 * database at one WAL position) and goes on with segments: the WAL frames of complete commits,
 * in order, each segment stamped with the time the shipper saw them. Restoring to T replays the
 * segments stamped ≤ T onto the base of the chain covering T. A chain lasts while the shipper can
 * prove it saw every commit: it holds the database's write lock while it copies new frames and
 * checkpoints, so no commit slips between the two, and a WAL restart (new salts) continues the
 * chain only when it follows the shipper's own full checkpoint; between ticks the shipper holds a
 * read transaction, so no other connection's checkpoint can backfill (and a restart then lose)
 * frames not shipped yet. Anything else (the shipper's first tick after a start, a WAL that
 * vanished) starts a new chain with a new base: a gap in the restorable window, never a wrong restore.
 */

const WAL_HEADER_BYTES = 32
const FRAME_HEADER_BYTES = 24
const WAL_MAGIC_LE = 0x377f0682
const WAL_MAGIC_BE = 0x377f0683
const SEGMENT_MAGIC = 'TNTYWAL1'
const SEGMENT_HEADER_BYTES = 16
const CHAIN_FILE = 'chain.json'
const BASE_FILE = 'base.sqlite'
const SEGMENT_PATTERN = /^(\d{12})-(\d{13})\.seg$/
const CHAIN_PATTERN = /^c\d{13}-\d{4}$/

export interface WalHeader {
  bigEndian: boolean
  pageSize: number
  checkpointSequence: number
  salt1: number
  salt2: number
  checksum: [number, number]
}

/** One WAL frame: a page image; `commitSize` (the database's size in pages) is set on a transaction's last frame. */
export interface WalFrame {
  pgno: number
  commitSize: number
  page: Buffer
}

/** Where a scan of the WAL stopped: the end of its last complete commit. */
export interface WalPosition {
  /** The WAL had no header (empty or missing): whatever WAL comes next starts from the database file. */
  empty?: boolean
  salt1: number
  salt2: number
  offset: number
  checksum: [number, number]
}

/** SQLite's WAL checksum over `data` (a multiple of 8 bytes), seeded with `seed`. */
export function walChecksum(data: Buffer, bigEndian: boolean, seed: [number, number]): [number, number] {
  let s0 = seed[0]
  let s1 = seed[1]
  for (let i = 0; i < data.length; i += 8) {
    const x0 = bigEndian ? data.readUInt32BE(i) : data.readUInt32LE(i)
    const x1 = bigEndian ? data.readUInt32BE(i + 4) : data.readUInt32LE(i + 4)
    s0 = (s0 + x0 + s1) >>> 0
    s1 = (s1 + x1 + s0) >>> 0
  }
  return [s0, s1]
}

/** The WAL header, or `undefined` when there is none (no file, too short, or not a valid header). */
export function parseWalHeader(wal: Buffer): WalHeader | undefined {
  if (wal.length < WAL_HEADER_BYTES) return undefined
  const magic = wal.readUInt32BE(0)
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) return undefined
  const bigEndian = magic === WAL_MAGIC_BE
  const checksum = walChecksum(wal.subarray(0, 24), bigEndian, [0, 0])
  if (checksum[0] !== wal.readUInt32BE(24) || checksum[1] !== wal.readUInt32BE(28)) return undefined
  return { bigEndian, pageSize: wal.readUInt32BE(8), checkpointSequence: wal.readUInt32BE(12), salt1: wal.readUInt32BE(16), salt2: wal.readUInt32BE(20), checksum }
}

/**
 * The frames of complete commits from `from` on (the start of the WAL by default): a frame
 * counts while its salts are the header's and its checksum continues the chain; frames after
 * the last commit frame (a transaction not committed, a torn write, an older generation's
 * leftovers) are never returned.
 */
export function readWalCommits(wal: Buffer, header: WalHeader, from?: WalPosition): { frames: WalFrame[]; end: WalPosition } {
  const frameBytes = FRAME_HEADER_BYTES + header.pageSize
  let offset = from?.offset ?? WAL_HEADER_BYTES
  let checksum = from?.checksum ?? header.checksum
  let end: WalPosition = { salt1: header.salt1, salt2: header.salt2, offset, checksum }
  const frames: WalFrame[] = []
  let pending: WalFrame[] = []
  while (offset + frameBytes <= wal.length) {
    const frame = wal.subarray(offset, offset + frameBytes)
    if (frame.readUInt32BE(8) !== header.salt1 || frame.readUInt32BE(12) !== header.salt2) break
    let next = walChecksum(frame.subarray(0, 8), header.bigEndian, checksum)
    next = walChecksum(frame.subarray(FRAME_HEADER_BYTES), header.bigEndian, next)
    if (next[0] !== frame.readUInt32BE(16) || next[1] !== frame.readUInt32BE(20)) break
    checksum = next
    offset += frameBytes
    const commitSize = frame.readUInt32BE(4)
    pending.push({ pgno: frame.readUInt32BE(0), commitSize, page: Buffer.from(frame.subarray(FRAME_HEADER_BYTES)) })
    if (commitSize > 0) {
      frames.push(...pending)
      pending = []
      end = { salt1: header.salt1, salt2: header.salt2, offset, checksum }
    }
  }
  return { frames, end }
}

/** Writes frames into an open file: each page at its place, the file cut to the size of each commit. */
export function applyFrames(fd: number, pageSize: number, frames: readonly WalFrame[]): void {
  for (const frame of frames) {
    writeSync(fd, frame.page, 0, pageSize, (frame.pgno - 1) * pageSize)
    if (frame.commitSize > 0) ftruncateSync(fd, frame.commitSize * pageSize)
  }
}

/** One chain of the archive, as listed. */
export interface WalChain {
  id: string
  directory: string
  /** When its base was taken (ms): the earliest time it restores to. */
  from: number
  /** The last time the shipper saw the WAL for it (ms): the latest time it restores to. */
  to: number
  pageSize: number
}

interface ChainFile {
  from: number
  to: number
  pageSize: number
  /** Segments written so far: the next one's sequence number. */
  segments: number
}

/** The archive's chains, oldest first. A chain whose base was never completed is left out. */
export function listChains(archive: string): WalChain[] {
  if (!existsSync(archive)) return []
  const chains: WalChain[] = []
  for (const id of readdirSync(archive).sort()) {
    if (!CHAIN_PATTERN.test(id)) continue
    const directory = join(archive, id)
    const meta = readChainFile(directory)
    if (meta) chains.push({ id, directory, from: meta.from, to: meta.to, pageSize: meta.pageSize })
  }
  return chains
}

/**
 * Writes the database as it was at `at` (ms) to the new file `destination`, from the chain
 * covering it: its base, then its segments stamped ≤ `at`, then `PRAGMA integrity_check`.
 */
export function restoreChain(chain: WalChain, at: number, destination: string): { commits: number } {
  if (at < chain.from || at > chain.to) throw new TenantryError('INVALID_OPTION', `Chain ${chain.id} covers ${iso(chain.from)} to ${iso(chain.to)}, not ${iso(at)}`)
  copyFileSync(join(chain.directory, BASE_FILE), destination)
  let commits = 0
  const fd = openSync(destination, 'r+')
  try {
    for (const segment of segments(chain.directory)) {
      if (segment.stamp > at) break
      const frames = readSegment(segment.path, chain.pageSize)
      applyFrames(fd, chain.pageSize, frames)
      commits += frames.filter((f) => f.commitSize > 0).length
    }
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  const db = new Database(destination, { fileMustExist: true })
  try {
    const result = db.pragma('integrity_check', { simple: true })
    if (result !== 'ok') throw new TenantryError('INVALID_BACKUP', `The point-in-time image at ${iso(at)} is damaged: ${String(result)}`)
  } finally {
    db.close()
  }
  return { commits }
}

/** Removes chains that end before `before` (ms), keeping the newest chain whatever its age. */
export function pruneChains(archive: string, before: number): string[] {
  const chains = listChains(archive)
  const removed: string[] = []
  for (const chain of chains.slice(0, -1)) {
    if (chain.to >= before) break
    rmSync(chain.directory, { recursive: true, force: true })
    removed.push(chain.id)
  }
  return removed
}

export interface WalShipperOptions {
  /** The database file (in WAL mode). */
  path: string
  /** The tenant's archive directory, one sub-directory per chain. */
  archive: string
  /** Stamps of segments and bases (ms). @default Date.now */
  now?: () => number
  /** A chain older than this starts over with a new base, so that old chains can be pruned. @default 1 day */
  rebaseAfterMs?: number
}

/** What one tick of the shipper did. */
export interface ShipResult {
  /** The chain shipped into; undefined when the tick was skipped (another connection held the write lock). */
  chain: string | undefined
  /** A new chain was started (its base taken) on this tick. */
  rebased: boolean
  frames: number
  commits: number
  /** The WAL was fully checkpointed after shipping (its next writer may restart it). */
  checkpointed: boolean
}

/**
 * Ships one database's WAL into its archive, one `ship()` per tick. It owns two connections:
 * one holds the write lock during a tick (nothing commits while frames are copied and
 * checkpointed), the other checkpoints. Every other connection must leave checkpoints to it
 * (`wal_autocheckpoint=0`), which the SQLite engine does for point-in-time tenants.
 */
export class WalShipper {
  readonly #path: string
  readonly #archive: string
  /** The database file shipped. */
  get path(): string {
    return this.#path
  }
  readonly #now: () => number
  readonly #rebaseAfterMs: number
  readonly #lock: Database.Database
  readonly #checkpointer: Database.Database
  #chain: { id: string; directory: string; meta: ChainFile } | undefined
  #position: WalPosition | undefined
  /** The WAL position our last checkpoint backfilled completely, if it did. */
  #fullyCheckpointedAt: WalPosition | undefined

  constructor(options: WalShipperOptions) {
    this.#path = options.path
    this.#archive = options.archive
    this.#now = options.now ?? Date.now
    this.#rebaseAfterMs = options.rebaseAfterMs ?? 24 * 60 * 60 * 1000
    // No busy wait: a tick runs on the event loop, and a writer of this process holding its lock
    // across an await could not finish while we waited. A busy tick is skipped; the next one ships.
    this.#lock = new Database(this.#path, { fileMustExist: true, timeout: 0 })
    this.#checkpointer = new Database(this.#path, { fileMustExist: true, timeout: 0 })
    for (const db of [this.#lock, this.#checkpointer]) {
      db.pragma('journal_mode = WAL')
      db.pragma('wal_autocheckpoint = 0')
    }
  }

  /**
   * Copies newly committed frames into a segment stamped `at` (tests), else the time the write
   * lock was taken (no commit can come later), then checkpoints: all under the write lock.
   */
  ship(at?: number): ShipResult {
    try {
      this.#lock.exec('BEGIN IMMEDIATE')
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_BUSY') return { chain: undefined, rebased: false, frames: 0, commits: 0, checkpointed: false }
      throw error
    }
    const stamp = at ?? this.#now()
    try {
      // A read of the schema fixes this connection's snapshot at the end of the WAL.
      this.#lock.prepare('SELECT count(*) FROM sqlite_master').get()
      const wal = readWal(this.#path)
      const header = parseWalHeader(wal)
      let rebased = false
      let from: WalPosition | undefined
      if (this.#chain && this.#position && this.#chain.meta.from + this.#rebaseAfterMs > stamp) {
        if (!header) from = this.#position.offset === WAL_HEADER_BYTES ? this.#position : undefined
        else if (this.#position.empty) from = { salt1: header.salt1, salt2: header.salt2, offset: WAL_HEADER_BYTES, checksum: header.checksum }
        else if (header.salt1 === this.#position.salt1 && header.salt2 === this.#position.salt2) from = this.#position
        else if (this.#followsOurCheckpoint(header)) from = { salt1: header.salt1, salt2: header.salt2, offset: WAL_HEADER_BYTES, checksum: header.checksum }
        // else: the WAL moved on without us (another program checkpointed): a new chain.
      }
      let frames: WalFrame[] = []
      if (from === undefined || !header) {
        if (from === undefined) {
          this.#startChain(wal, header, stamp)
          rebased = true
        }
      } else {
        const read = readWalCommits(wal, header, from)
        frames = read.frames
        this.#position = read.end
        if (frames.length) this.#writeSegment(frames, stamp)
      }
      this.#chain!.meta.to = stamp
      // Not synced: after a crash the window may end a tick early, never later than what is on disk.
      writeChainFile(this.#chain!.directory, this.#chain!.meta, false)
      // Still under the write lock: everything in the WAL is archived, so it may be backfilled.
      if (this.#checkpointer.inTransaction) this.#checkpointer.exec('COMMIT')
      const [result] = this.#checkpointer.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>
      const done = result !== undefined && result.busy === 0 && result.log >= 0 && result.log === result.checkpointed
      this.#fullyCheckpointedAt = done ? this.#position : undefined
      // A read transaction held until the next tick, begun at the end of what was shipped: no
      // other connection's checkpoint can backfill past it, and the WAL cannot restart more than
      // once (and only if the checkpoint above was complete), so no unshipped frame is lost.
      this.#checkpointer.exec('BEGIN')
      this.#checkpointer.prepare('SELECT count(*) FROM sqlite_master').get()
      return { chain: this.#chain!.id, rebased, frames: frames.length, commits: frames.filter((f) => f.commitSize > 0).length, checkpointed: done }
    } finally {
      this.#lock.exec('ROLLBACK')
    }
  }

  close(): void {
    if (this.#checkpointer.inTransaction) this.#checkpointer.exec('COMMIT')
    this.#lock.close()
    this.#checkpointer.close()
  }

  /** A WAL restart after our own full checkpoint: SQLite adds one to salt-1 (and draws a new salt-2). */
  #followsOurCheckpoint(header: WalHeader): boolean {
    const at = this.#fullyCheckpointedAt
    return at !== undefined && at === this.#position && header.salt1 === ((at.salt1 + 1) >>> 0)
  }

  /** A new chain: the database file as it is plus every committed frame of the WAL (we hold the write lock). */
  #startChain(wal: Buffer, header: WalHeader | undefined, stamp: number): void {
    mkdirSync(this.#archive, { recursive: true, mode: 0o700 })
    let id = `c${String(stamp).padStart(13, '0')}-0000`
    for (let n = 1; existsSync(join(this.#archive, id)); n++) id = `c${String(stamp).padStart(13, '0')}-${String(n).padStart(4, '0')}`
    const directory = join(this.#archive, id)
    mkdirSync(directory, { mode: 0o700 })
    const base = join(directory, BASE_FILE)
    copyFileSync(this.#path, `${base}.tmp`)
    const pageSize = Number(this.#lock.pragma('page_size', { simple: true }))
    const read = header ? readWalCommits(wal, header) : undefined
    const fd = openSync(`${base}.tmp`, 'r+')
    try {
      if (read) applyFrames(fd, pageSize, read.frames)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(`${base}.tmp`, base)
    const meta: ChainFile = { from: stamp, to: stamp, pageSize, segments: 0 }
    writeChainFile(directory, meta)
    this.#chain = { id, directory, meta }
    this.#position = read?.end ?? { empty: true, salt1: 0, salt2: 0, offset: WAL_HEADER_BYTES, checksum: [0, 0] }
  }

  #writeSegment(frames: readonly WalFrame[], stamp: number): void {
    const chain = this.#chain!
    const pageSize = chain.meta.pageSize
    const body = Buffer.alloc(SEGMENT_HEADER_BYTES + frames.length * (8 + pageSize))
    body.write(SEGMENT_MAGIC, 0, 'ascii')
    body.writeUInt32BE(pageSize, 8)
    body.writeUInt32BE(frames.length, 12)
    let at = SEGMENT_HEADER_BYTES
    for (const frame of frames) {
      body.writeUInt32BE(frame.pgno, at)
      body.writeUInt32BE(frame.commitSize, at + 4)
      frame.page.copy(body, at + 8)
      at += 8 + pageSize
    }
    const name = `${String(chain.meta.segments).padStart(12, '0')}-${String(stamp).padStart(13, '0')}.seg`
    writeDurably(join(chain.directory, name), body)
    chain.meta.segments += 1
  }
}

function readWal(path: string): Buffer {
  try {
    return readFileSync(`${path}-wal`)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0)
    throw error
  }
}

function segments(directory: string): Array<{ path: string; stamp: number }> {
  return readdirSync(directory)
    .filter((name) => SEGMENT_PATTERN.test(name))
    .sort()
    .map((name) => ({ path: join(directory, name), stamp: Number(SEGMENT_PATTERN.exec(name)![2]) }))
}

function readSegment(path: string, pageSize: number): WalFrame[] {
  const body = readFileSync(path)
  if (body.subarray(0, 8).toString('ascii') !== SEGMENT_MAGIC || body.readUInt32BE(8) !== pageSize) throw new TenantryError('INVALID_BACKUP', `${path} is not a WAL segment of this chain`)
  const count = body.readUInt32BE(12)
  if (body.length !== SEGMENT_HEADER_BYTES + count * (8 + pageSize)) throw new TenantryError('INVALID_BACKUP', `${path} is cut short`)
  const frames: WalFrame[] = []
  for (let i = 0, at = SEGMENT_HEADER_BYTES; i < count; i++, at += 8 + pageSize) {
    frames.push({ pgno: body.readUInt32BE(at), commitSize: body.readUInt32BE(at + 4), page: body.subarray(at + 8, at + 8 + pageSize) })
  }
  return frames
}

function readChainFile(directory: string): ChainFile | undefined {
  try {
    return JSON.parse(readFileSync(join(directory, CHAIN_FILE), 'utf8')) as ChainFile
  } catch {
    return undefined
  }
}

function writeChainFile(directory: string, meta: ChainFile, sync = true): void {
  writeDurably(join(directory, CHAIN_FILE), Buffer.from(JSON.stringify(meta)), sync)
}

/** Written whole or not at all: a temporary file, synced, renamed over the name. */
function writeDurably(path: string, body: Buffer, sync = true): void {
  const fd = openSync(`${path}.tmp`, 'w', 0o600)
  try {
    writeSync(fd, body)
    if (sync) fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(`${path}.tmp`, path)
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}
