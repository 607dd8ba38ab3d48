/**
 * The search semantics of `?q=` / `list({ q })`, browser-safe, so the local backend matches
 * exactly what the server matches: the server's `data/search.ts` folds with this `foldSearch`.
 */

/** Longest `q` accepted (the server's `SEARCH_MAX_LENGTH`). */
export const SEARCH_MAX_LENGTH = 200

/** Letters whose lower case is not their fold (Unicode CaseFolding): Greek final sigma is a σ. */
const EXTRA_FOLDS: Readonly<Record<string, string>> = { 'ς': 'σ' }

/**
 * Text folded for matching: NFC, and each character lower-cased where its lower case is one
 * character (so `ÄRZTE` is `ärzte`, while `İ`, whose lower case is two characters, stays
 * itself), then Greek final sigma folded to σ.
 */
export function foldSearch(text: string): string {
  let out = ''
  for (const c of text.normalize('NFC')) {
    const lower = c.toLowerCase()
    const one = [...lower].length === 1 ? lower : c
    out += EXTRA_FOLDS[one] ?? one
  }
  return out
}

/** Whether any of `values` contains `q`, both folded: a plain substring, no wildcards. */
export function matchesSearch(values: readonly unknown[], q: string): boolean {
  const needle = foldSearch(q)
  return values.some((v) => typeof v === 'string' && foldSearch(v).includes(needle))
}
