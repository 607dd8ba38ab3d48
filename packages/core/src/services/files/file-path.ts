import { TenantryError } from '../../errors.js'

/**
 * The one check every file path and list prefix passes before a driver sees it (issue 12:
 * "no `..`, no absolute paths, no symlink escapes, no NUL/unicode tricks"). A path is a
 * relative, `/`-separated name that means the same thing on every driver (a local directory
 * tree, an S3 key): so it refuses whatever a file system or a browser would read differently
 * from how it looks.
 *
 * - normalized to NFC first, so `é` typed two ways names one file;
 * - no empty, `.` or `..` segment (so no leading or trailing `/`, no `//`), no backslash;
 * - no control characters (NUL included), line or paragraph separators, or bidirectional
 *   overrides and isolates (a name that displays as `invoice.pdf` but is `fdp.eciovni`);
 * - at most 1024 UTF-8 bytes in all, 255 per segment (what Linux file systems and S3 keep).
 *
 * Symlinks are the local driver's own matter (it never follows one): see `LocalFileDriver`.
 */

/** Longest path, in UTF-8 bytes (S3's key limit). */
export const FILE_PATH_MAX_BYTES = 1024
/** Longest segment, in UTF-8 bytes (ext4's, and most file systems', name limit). */
export const FILE_SEGMENT_MAX_BYTES = 255

// Cc: C0/C1 controls (NUL included); Zl/Zp: U+2028/U+2029; the bidi embeddings, overrides,
// isolates and marks (LRM, RLM, ALM).
const FORBIDDEN = /[\p{Cc}\p{Zl}\p{Zp}\u200E\u200F\u061C\u202A-\u202E\u2066-\u2069]/u

/** The NFC form of `path` if it is a valid file path; `INVALID_PATH` (400) naming the rule it breaks otherwise. */
export function checkFilePath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) throw invalid(path, 'a path is a non-empty string')
  return checkSegments(path.normalize('NFC'), path, false)
}

/**
 * The NFC form of a list prefix: `''` (everything), a path, or a path ending in `/` (one
 * folder's files). The same rules as a path otherwise.
 */
export function checkFilePrefix(prefix: unknown): string {
  if (prefix === undefined || prefix === '') return ''
  if (typeof prefix !== 'string') throw invalid(prefix, 'a prefix is a string')
  const normalized = prefix.normalize('NFC')
  if (!normalized.endsWith('/')) return checkSegments(normalized, prefix, false)
  checkSegments(normalized.slice(0, -1), prefix, true)
  return normalized
}

function checkSegments(path: string, original: string, isPrefix: boolean): string {
  const what = isPrefix ? 'prefix' : 'path'
  if (path.length === 0) throw invalid(original, `a ${what} ending in / names a folder: give its name before the /`)
  if (FORBIDDEN.test(path)) throw invalid(original, 'control characters (NUL included), line separators and bidirectional controls are refused')
  if (path.includes('\\')) throw invalid(original, 'backslashes are refused: separate folders with /')
  if (path.startsWith('/')) throw invalid(original, `a ${what} is relative to the tenant's files: no leading /`)
  if (Buffer.byteLength(path) > FILE_PATH_MAX_BYTES) throw invalid(original, `at most ${FILE_PATH_MAX_BYTES} bytes (UTF-8)`)
  for (const segment of path.split('/')) {
    if (segment === '') throw invalid(original, 'no empty segment (// or a trailing /)')
    if (segment === '.' || segment === '..') throw invalid(original, '. and .. segments are refused')
    if (Buffer.byteLength(segment) > FILE_SEGMENT_MAX_BYTES) throw invalid(original, `at most ${FILE_SEGMENT_MAX_BYTES} bytes (UTF-8) per segment`)
  }
  return path
}

function invalid(path: unknown, rule: string): TenantryError {
  const shown = typeof path === 'string' ? JSON.stringify(path.length > 80 ? `${path.slice(0, 80)}…` : path) : typeof path
  return new TenantryError('INVALID_PATH', `Invalid file path ${shown}: ${rule}`, { details: { rule } })
}
