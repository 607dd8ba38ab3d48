import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { SECRET_MAX_BYTES, SECRET_NAME_PATTERN, TenantryError, type SecretRecord } from 'tenantry'
import { UsageError } from '../errors.js'
import { cliActor, requireSlug } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import { quoteInput, type Column, type Output } from '../output.js'

const SECRET_COLUMNS: ReadonlyArray<Column<SecretRecord>> = [
  { header: 'NAME', value: (s) => s.name },
  { header: 'UPDATED', value: (s) => s.updatedAt },
  { header: 'UPDATED BY', value: (s) => s.updatedBy },
  { header: 'CREATED', value: (s) => s.createdAt },
]

interface SetOptions {
  fromEnv?: string
  fromFile?: string
  json?: boolean
}

/** A secret name from the command line, checked before anything is opened. */
function requireSecretName(name: string): string {
  if (!SECRET_NAME_PATTERN.test(name)) {
    throw new UsageError(`Invalid secret name ${quoteInput(name)}: use 1-128 of A-Z, a-z, 0-9, "_", "." and "-", starting with a letter`)
  }
  return name
}

/**
 * The value to set: from `--from-env VAR`, `--from-file PATH`, or stdin when it is piped; never
 * from an argument, which shell history and `ps` would keep. One trailing newline (as `echo` and
 * most editors add) is dropped.
 */
async function readValue(options: SetOptions): Promise<string> {
  if (options.fromEnv !== undefined && options.fromFile !== undefined) throw new UsageError('Give --from-env or --from-file, not both')
  let value: string
  if (options.fromEnv !== undefined) {
    const found = process.env[options.fromEnv]
    if (found === undefined) throw new UsageError(`The environment variable ${quoteInput(options.fromEnv)} is not set`)
    value = found
  } else if (options.fromFile !== undefined) {
    try {
      value = readFileSync(options.fromFile, 'utf8')
    } catch (error) {
      throw new UsageError(`Cannot read ${quoteInput(options.fromFile)}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`)
    }
  } else {
    if (process.stdin.isTTY) throw new UsageError('Pipe the value on stdin (e.g. `pbpaste | tenantry secret set acme STRIPE_KEY`), or use --from-env or --from-file')
    const chunks: Buffer[] = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    value = Buffer.concat(chunks).toString('utf8')
  }
  value = value.replace(/\r?\n$/, '')
  if (value.length === 0 || Buffer.byteLength(value) > SECRET_MAX_BYTES) throw new UsageError(`A secret's value is a non-empty string of at most ${SECRET_MAX_BYTES} bytes`)
  return value
}

/** `tenantry secret …`: set, list and delete a tenant's secrets (its own integration credentials). Values are never printed. */
export function registerSecretCommands(program: Command, out: Output): void {
  const secret = program.command('secret').description("set, list and delete a tenant's secrets (values are sealed with the tenant's own key and never printed)")

  secret
    .command('set')
    .description('set a secret (create or replace); the value comes from stdin, --from-env or --from-file, never from an argument')
    .argument('<slug>', 'the tenant slug')
    .argument('<name>', 'the secret name, e.g. STRIPE_SECRET_KEY')
    .option('--from-env <var>', 'read the value from this environment variable')
    .option('--from-file <path>', 'read the value from this file')
    .option('--json', 'print the secret record (never the value) as JSON')
    .action(async (slug: string, name: string, options: SetOptions, command: Command) => {
      requireSlug(slug)
      requireSecretName(name)
      const value = await readValue(options)
      await withTenantry(command, async (tenantry) => {
        const record = await tenantry.withTenant(slug, () => tenantry.secrets.set(name, value, { actor: cliActor() }))
        if (options.json) return out.json(record)
        out.line(`Secret ${record.name} of tenant ${slug} set.`)
      })
    })

  secret
    .command('list')
    .description("list a tenant's secrets: names and dates, never values")
    .argument('<slug>', 'the tenant slug')
    .option('--json', 'print the secrets as a JSON array')
    .action(async (slug: string, options: { json?: boolean }, command: Command) => {
      requireSlug(slug)
      await withTenantry(command, async (tenantry) => {
        const secrets = await tenantry.withTenant(slug, () => tenantry.secrets.list())
        if (options.json) return out.json(secrets)
        if (secrets.length === 0) return out.line(`No secrets for ${slug}. Set one with: tenantry secret set ${slug} <NAME> --from-env <VAR>`)
        out.table(secrets, SECRET_COLUMNS)
      })
    })

  secret
    .command('delete')
    .description('delete a secret')
    .argument('<slug>', 'the tenant slug')
    .argument('<name>', 'the secret name')
    .option('--json', 'print { deleted } as JSON')
    .action(async (slug: string, name: string, options: { json?: boolean }, command: Command) => {
      requireSlug(slug)
      requireSecretName(name)
      await withTenantry(command, async (tenantry) => {
        const deleted = await tenantry.withTenant(slug, () => tenantry.secrets.delete(name, { actor: cliActor() }))
        if (!deleted) throw new TenantryError('INVALID_OPTION', `Tenant ${slug} has no secret named ${name}`)
        if (options.json) return out.json({ deleted: name })
        out.line(`Secret ${name} of tenant ${slug} deleted.`)
      })
    })
}
