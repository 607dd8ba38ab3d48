import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { TenantryError } from '../errors.js'

const VERSION = 'v1'
const KEY_BYTES = 32
const IV_BYTES = 12

/**
 * Encrypts secrets at rest with AES-256-GCM. Every secret is bound to what it belongs to
 * (`associatedData`, e.g. `data-source:eu_1`): a ciphertext copied onto another row fails
 * to decrypt instead of lending its secret there.
 *
 * Sealed form: `v1.<iv>.<tag>.<ciphertext>`, each part base64url.
 */
export class SecretBox {
  readonly #load: () => Buffer
  #loaded: Buffer | undefined
  /** What `derive` starts from when it is not the key itself (see `useDerivationRoot`). */
  #derivationRoot: Buffer | undefined

  /** `key` may be a function: it is called once, when a secret is first sealed or opened. */
  constructor(key: Buffer | (() => Buffer)) {
    this.#load = typeof key === 'function' ? key : () => key
  }

  /** A fresh random key, base64: what `TENANTRY_SECRET_KEY` and the key file hold. */
  static generateKey(): string {
    return randomBytes(KEY_BYTES).toString('base64')
  }

  /** Reads a key as `TENANTRY_SECRET_KEY` or the key file gives it (32 bytes, base64 or hex); `source` names it in the error. */
  static decodeKey(text: string, source: string): Buffer {
    return decodeKey(text.trim(), source)
  }

  /**
   * Derives from `root` instead of the key from now on. A key rotation keeps the old
   * derivation root (sealed in the catalog), so that what was derived (role passwords stored in
   * the databases) does not change with the key.
   */
  useDerivationRoot(root: Buffer): void {
    if (root.length !== KEY_BYTES) throw new TenantryError('INVALID_CONFIG', `A derivation root must be ${KEY_BYTES} bytes`)
    this.#derivationRoot = root
  }

  /**
   * The bytes `derive` starts from: the derivation root, else the key. For key rotation only,
   * which seals it under the new key.
   * @internal
   */
  derivationRoot(): Buffer {
    return this.#derivationRoot ?? this.#key
  }

  get #key(): Buffer {
    if (!this.#loaded) {
      const key = this.#load()
      if (key.length !== KEY_BYTES) throw new TenantryError('INVALID_CONFIG', `A secret key must be ${KEY_BYTES} bytes`)
      this.#loaded = key
    }
    return this.#loaded
  }

  /**
   * The key from `TENANTRY_SECRET_KEY` (32 bytes, base64 or hex), else from `keyFile`,
   * which is created with a fresh random key (mode 0600) when missing. The file is for the
   * embedded default; production sets the variable from its secret store. Nothing is read
   * or created until a secret is first needed, so a setup with no secrets has no key file.
   * `options.create: false`: never create it (the catalog holds secrets sealed with a key).
   */
  static fromEnvironment(keyFile: string, env: NodeJS.ProcessEnv = process.env, options: { create?: boolean } = {}): SecretBox {
    const fromEnv = env.TENANTRY_SECRET_KEY
    if (fromEnv) return new SecretBox(() => decodeKey(fromEnv, 'TENANTRY_SECRET_KEY'))
    return new SecretBox(() => {
      if (!existsSync(keyFile)) {
        // A fresh key for a catalog that already holds sealed secrets would open none of them.
        if (options.create === false) {
          throw new TenantryError('INVALID_CONFIG', `No secret key: set TENANTRY_SECRET_KEY to this deployment's key (or restore ${keyFile})`)
        }
        mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 })
        try {
          writeFileSync(keyFile, randomBytes(KEY_BYTES).toString('base64') + '\n', { mode: 0o600, flag: 'wx' })
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error // another process wrote it first
        }
      }
      return decodeKey(readFileSync(keyFile, 'utf8').trim(), keyFile)
    })
  }

  /**
   * A stable secret for `purpose` (e.g. a generated role's password), derived from the key
   * with HMAC-SHA256: nothing to store, and it changes when the key is rotated.
   */
  derive(purpose: string): string {
    return createHmac('sha256', this.derivationRoot()).update(purpose, 'utf8').digest('base64url')
  }

  seal(plaintext: string, associatedData: string): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv)
    cipher.setAAD(Buffer.from(associatedData, 'utf8'))
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return [VERSION, iv, cipher.getAuthTag(), ciphertext].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.')
  }

  /** Throws `INVALID_CONFIG` when the sealed value was tampered with, moved, or sealed with another key. */
  open(sealed: string, associatedData: string): string {
    const [version, iv, tag, ciphertext] = sealed.split('.')
    if (version !== VERSION || !iv || !tag || ciphertext === undefined) {
      throw new TenantryError('INVALID_CONFIG', 'Unreadable sealed secret')
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'))
      decipher.setAAD(Buffer.from(associatedData, 'utf8'))
      decipher.setAuthTag(Buffer.from(tag, 'base64url'))
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8')
    } catch (error) {
      throw new TenantryError('INVALID_CONFIG', `A secret for ${associatedData} cannot be decrypted with this key`, { cause: error })
    }
  }
}

function decodeKey(text: string, source: string): Buffer {
  const key = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64')
  if (key.length !== KEY_BYTES) {
    throw new TenantryError('INVALID_CONFIG', `${source} must hold a ${KEY_BYTES}-byte key, base64 or hex`)
  }
  return key
}
