import type { Command } from 'commander'
import { rotateSecretKey, SECRET_KEY_ENV } from 'tenantry'
import { withTenantry } from '../open-tenantry.js'
import type { Output } from '../output.js'

/**
 * `tenantry secret-key rotate`: re-seals every secret in the catalog with a new key, in one
 * catalog transaction (see `rotateSecretKey` for the order and its crash safety). With
 * `TENANTRY_SECRET_KEY` set, the new key is printed once, before the catalog changes, and
 * must be saved in the secret store; otherwise the key file under the home is replaced.
 * Every process on the catalog must then be restarted with the new key.
 */
export function registerSecretKeyCommands(program: Command, out: Output): void {
  const secretKey = program.command('secret-key').description('the deployment secret key that seals data source credentials')
  secretKey
    .command('rotate')
    .description(`re-seal every secret in the catalog with a new key (printed once when ${SECRET_KEY_ENV} is set, else written to the key file)`)
    .option('--json', 'print as JSON: { resealed, keyFile } with a key file, { key } (printed before the catalog changes) with the variable')
    .action(async (options: { json?: boolean }, command: Command) => {
      const result = await withTenantry(command, (tenantry) =>
        rotateSecretKey(tenantry.catalog, tenantry.config.home, process.env, {
          // Shown before the catalog changes: a crash after the commit must not lose it.
          onNewKey: (key) => {
            if (options.json) return out.json({ key })
            out.line(`New secret key (shown once; save it as ${SECRET_KEY_ENV} in your secret store before restarting):`)
            out.line(key)
          },
        }),
      )
      if (options.json) {
        if (result.source.kind === 'file') out.json({ resealed: result.resealed, keyFile: result.source.path })
        return
      }
      if (result.source.kind === 'file') out.line(`Re-sealed ${result.resealed} secret(s); the new key is in ${result.source.path}.`)
      else out.line(`Re-sealed ${result.resealed} secret(s). Restart every process on this catalog with the new ${SECRET_KEY_ENV}.`)
    })
}
