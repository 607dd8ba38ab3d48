import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, expect, it } from 'vitest'
import { resolveConfig } from 'tenantry'
import { startServer } from './start.js'

const home = mkdtempSync(join(tmpdir(), 'tenantry-start-'))
afterAll(() => rmSync(home, { recursive: true, force: true }))

// Regression: the Tenantry that startServer opens logged nowhere, so errors core handles
// without throwing (a failed cleanup, a missed heartbeat) never reached the server's log.
it('gives the Tenantry it opens the app’s logger', async () => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const server = await startServer({
    config: resolveConfig({ home, migrations: { tenant: {} } }),
    port: 0,
    handleSignals: false,
    app: { logger: { level: 'warn', stream }, env: { ...process.env, BETTER_AUTH_SECRET: 'x'.repeat(32) } },
  })
  try {
    server.tenantry.logger.warn({ tenantId: 't0000000000000000000', err: new Error('disk full') }, 'could not write the heartbeat')
    expect(lines).toContainEqual(
      expect.objectContaining({ component: 'tenantry', tenantId: 't0000000000000000000', msg: 'could not write the heartbeat' }),
    )
  } finally {
    await server.close()
  }
})
