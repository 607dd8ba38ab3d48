import { Option, type Command } from 'commander'
import { parseDuration, type ResolvedConfig, type TokenRecord } from 'tenantry'
import { UsageError } from '../errors.js'
import { cliActor, requireSlug } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import { cell, quoteInput, type Column, type Output } from '../output.js'

interface CreateOptions {
  readOnly?: boolean
  expiresIn?: string
  /** The old spelling of `--expires-in`, still accepted. */
  expires?: string
  name?: string
  json?: boolean
}

const TOKEN_COLUMNS: ReadonlyArray<Column<TokenRecord>> = [
  { header: 'ID', value: (t) => t.id },
  { header: 'NAME', value: (t) => t.name },
  { header: 'PREFIX', value: (t) => `${t.prefix}…` },
  { header: 'ACCESS', value: (t) => (t.readOnly ? 'read-only' : 'read-write') },
  { header: 'STATUS', value: (t) => tokenStatus(t) },
  { header: 'EXPIRES', value: (t) => t.expiresAt ?? 'never' },
  { header: 'LAST USED', value: (t) => t.lastUsedAt ?? 'never' },
]

/** `revoked`, `expired` or `active`. */
function tokenStatus(t: TokenRecord): string {
  if (t.revokedAt) return 'revoked'
  if (t.expiresAt && Date.parse(t.expiresAt) <= Date.now()) return 'expired'
  return 'active'
}

/** Where SQL-over-HTTP is served: the server's public URL, as the server itself resolves it. */
export function sqlUrl(config: ResolvedConfig, env: NodeJS.ProcessEnv = process.env): string {
  const configured = config.server.baseURL
  return typeof configured === 'string' ? configured : (env.BETTER_AUTH_URL ?? 'http://127.0.0.1:3000')
}

/** `tenantry token …`: create, list, revoke integration tokens. */
export function registerTokenCommands(program: Command, out: Output): void {
  const token = program.command('token').description('create, list and revoke integration tokens (SQL-over-HTTP, API)')

  token
    .command('create')
    .description('create a token for a tenant; it is shown once, never again')
    .argument('<slug>', 'the tenant slug')
    .option('--read-only', 'the token can read but never change data or schema')
    .option('--expires-in <duration>', 'lifetime, e.g. 30d, 12h, 45m, 2w (default: until revoked)')
    .addOption(new Option('--expires <duration>').hideHelp())
    .option('--name <name>', 'a label for listings', 'token')
    .option('--json', 'print { token, record, url } as JSON')
    .action(async (slug: string, options: CreateOptions, command: Command) => {
      requireSlug(slug)
      if (options.expiresIn !== undefined && options.expires !== undefined) {
        throw new UsageError('Give --expires-in only (--expires is its old spelling)')
      }
      const expiresIn = options.expiresIn ?? options.expires
      // Checked here too, so that a typo is a usage error (exit 2) and nothing is opened.
      if (expiresIn !== undefined && parseDuration(expiresIn) === undefined) {
        throw new UsageError(`Invalid --expires-in ${quoteInput(expiresIn)}: use a number and s, m, h, d or w, e.g. 30d`)
      }
      await withTenantry(command, async (tenantry, config) => {
        const created = await tenantry.tokens.create(slug, {
          readOnly: options.readOnly ?? false,
          ...(expiresIn !== undefined ? { expiresIn } : {}),
          ...(options.name !== undefined ? { name: options.name } : {}),
          createdBy: cliActor(),
        })
        const url = sqlUrl(config)
        if (options.json) return out.json({ ...created, url })
        const { record } = created
        out.line(`Created ${record.readOnly ? 'read-only' : 'read-write'} token ${record.id} (${cell(record.name)}) for tenant ${slug}${record.expiresAt ? `, expires ${record.expiresAt}` : ''}.`)
        out.line()
        out.line(`  ${created.token}`)
        out.line()
        out.line('Copy it now: it is not shown again.')
        out.line(`SQL-over-HTTP (libSQL clients): createClient({ url: '${url}', authToken: '<the token>' })`)
      })
    })

  token
    .command('list')
    .description("list a tenant's tokens (never their secrets)")
    .argument('<slug>', 'the tenant slug')
    .option('--json', 'print the tokens as a JSON array')
    .action(async (slug: string, options: { json?: boolean }, command: Command) => {
      requireSlug(slug)
      await withTenantry(command, async (tenantry) => {
        const tokens = await tenantry.tokens.list(slug)
        if (options.json) return out.json(tokens)
        if (tokens.length === 0) return out.line(`No tokens for ${slug}. Create one with: tenantry token create ${slug} --read-only`)
        out.table(tokens, TOKEN_COLUMNS)
      })
    })

  token
    .command('revoke')
    .description('revoke a token for good')
    .argument('<id>', 'the token id, as `token list` shows it')
    .option('--json', 'print the token record as JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      if (!/^[a-z2-7]{16}$/.test(id)) throw new UsageError(`Invalid token id ${quoteInput(id)}: 16 characters of a-z and 2-7, as \`tenantry token list\` shows`)
      await withTenantry(command, async (tenantry) => {
        const record = await tenantry.tokens.revoke(id, { actor: cliActor() })
        if (options.json) return out.json(record)
        out.line(`Token ${record.id} revoked.`)
      })
    })
}
