import { afterAll, describe, it } from 'vitest'
import { createCliProject } from '@tenantry/cli/testing'

const project = createCliProject(
  `export default { server: { limits: { plans: { pro: { tenant: 5000 } } }, sqlOverHttp: { tenants: { acme: { maxStatements: 3 } } } } }\n`,
  'tenantry-cli-limits-',
)
afterAll(() => project.cleanup())

const cli = (...args: string[]) => project.cli(args)

describe('tenantry tenant limits', () => {
  it('shows effective limits with their source, changes them, and refuses bad input changing nothing', async ({ expect }) => {
    expect((await cli('tenant', 'create', 'acme')).code).toBe(0)
    const shown = await cli('tenant', 'limits', 'acme', '--json')
    expect(shown.code, shown.stderr).toBe(0)
    const before = JSON.parse(shown.stdout)
    expect(before.limits.plan).toEqual({ value: 'default', source: 'default' })
    expect(before.limits.sqlMaxStatements).toEqual({ value: 3, source: 'config' })
    expect(before.plans).toEqual(['default', 'pro'])

    const changed = await cli('tenant', 'limits', 'acme', '--plan', 'pro', '--sql-timeout', '5s', '--data-api-timeout', '1500ms', '--max-statements', '2', '--json')
    expect(changed.code, changed.stderr).toBe(0)
    const after = JSON.parse(changed.stdout)
    expect(after.overrides).toEqual({ plan: 'pro', sqlStatementTimeoutMs: 5000, dataApiStatementTimeoutMs: 1500, sqlMaxStatements: 2 })
    expect(after.limits.plan).toEqual({ value: 'pro', source: 'tenant' })
    expect(after.limits.rates.tenant).toBe(5000)
    expect(after.limits.sqlMaxStatements).toEqual({ value: 2, source: 'tenant' })

    for (const [option, value, message] of [
      ['--plan', 'platinum', /--plan: unknown plan "platinum"/],
      ['--sql-timeout', '5x', /--sql-timeout: expected a duration/],
      ['--max-statements', '0', /--max-statements: expected a whole number/],
    ] as const) {
      const bad = await cli('tenant', 'limits', 'acme', option, value)
      expect(bad.code, bad.stdout).toBe(2)
      expect(bad.stderr).toMatch(message)
    }
    // `--plan default` is the plan named default; `config` follows the config again.
    expect(JSON.parse((await cli('tenant', 'limits', 'acme', '--plan', 'default', '--json')).stdout).limits.plan).toEqual({ value: 'default', source: 'tenant' })
    expect(JSON.parse((await cli('tenant', 'limits', 'acme', '--plan', 'config', '--json')).stdout).limits.plan).toEqual({ value: 'default', source: 'default' })
    await cli('tenant', 'limits', 'acme', '--plan', 'pro')
    const table = await cli('tenant', 'limits', 'acme', '--max-statements', 'config')
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout).toMatch(/plan\s+pro .*tenant/)
    expect(table.stdout).toMatch(/sql max statements\s+3\s+config/)
    expect(table.stdout).toMatch(/sql statement timeout\s+5000ms\s+tenant/)
  })
})
