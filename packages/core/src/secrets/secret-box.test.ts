import { randomBytes } from 'node:crypto'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../testing/services.js'
import { SecretBox } from './secret-box.js'

describe('SecretBox', () => {
  const box = new SecretBox(randomBytes(32))

  it('round-trips a secret bound to its owner, with a fresh IV each time', () => {
    const a = box.seal('postgres://u:pw@h/db', 'data-source:eu_1')
    const b = box.seal('postgres://u:pw@h/db', 'data-source:eu_1')
    expect(a).not.toBe(b)
    // Neither the text nor any decoded part holds the secret. (Not `not.toContain('pw')`: a random
    // base64url ciphertext holds any two letters one time in fifty.)
    expect(a).not.toContain('postgres://')
    for (const part of a.split('.')) expect(Buffer.from(part, 'base64url').includes('u:pw@h')).toBe(false)
    expect(box.open(a, 'data-source:eu_1')).toBe('postgres://u:pw@h/db')
  })

  it('refuses a secret moved to another owner, tampered with, or opened with another key', () => {
    const sealed = box.seal('s3cret', 'data-source:a')
    expect(() => box.open(sealed, 'data-source:b')).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }))
    const [v, iv, tag, ct] = sealed.split('.')
    const flipped = Buffer.from(ct!, 'base64url')
    flipped[0]! ^= 1
    expect(() => box.open([v, iv, tag, flipped.toString('base64url')].join('.'), 'data-source:a')).toThrow()
    expect(() => new SecretBox(randomBytes(32)).open(sealed, 'data-source:a')).toThrow()
    expect(() => box.open('garbage', 'data-source:a')).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }))
  })

  it('creates its key file (0600) only when a secret is first needed, and reuses it', () => {
    const dir = tempDir()
    try {
      const file = join(dir.path, 'secret.key')
      const lazy = SecretBox.fromEnvironment(file, {})
      expect(existsSync(file)).toBe(false)
      const sealed = lazy.seal('x', 'p')
      expect(statSync(file).mode & 0o777).toBe(0o600)
      expect(SecretBox.fromEnvironment(file, {}).open(sealed, 'p')).toBe('x')
    } finally {
      dir.cleanup()
    }
  })

  it('takes TENANTRY_SECRET_KEY (base64 or hex) and refuses a key of the wrong size', () => {
    const key = randomBytes(32)
    const sealed = SecretBox.fromEnvironment('/nonexistent', { TENANTRY_SECRET_KEY: key.toString('base64') }).seal('x', 'p')
    expect(SecretBox.fromEnvironment('/nonexistent', { TENANTRY_SECRET_KEY: key.toString('hex') }).open(sealed, 'p')).toBe('x')
    expect(() => SecretBox.fromEnvironment('/nonexistent', { TENANTRY_SECRET_KEY: 'c2hvcnQ=' }).seal('x', 'p')).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    )
  })
})
