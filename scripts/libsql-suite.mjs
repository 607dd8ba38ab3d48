// Runs libSQL's own client suite (tursodatabase/libsql-client-ts,
// packages/libsql-client/src/__tests__/client.test.ts) against a Tenantry server started here,
// in each protocol mode, and prints the counts and every failure (README: SQL-over-HTTP,
// Compatibility). Nothing of the suite is in this repo, and this script fetches nothing: give it
// a checkout of libsql-client-ts.
//
//   node scripts/libsql-suite.mjs <libsql-client-ts checkout> [mode…]
//
// Modes: http-v2 ws-v2 libsql-v2 http-v3 ws-v3 libsql-v3 http-test_v3 ws-test_v3 (all by default).
// `v2` is the client as released (Hrana 2, JSON, `SERVER=sqld`); `v3` forces it to Hrana 3
// (protobuf, `SERVER=sqld`); `test_v3` also turns the suite's Hrana 3 tests on (`SERVER=test_v3`).
// In a temporary directory (printed, kept): the suite's two files with their imports pointed at
// vitest and the installed `@libsql/client` (the checkout's version), and a fresh server home
// with one tenant (examples/cv-builder's migrations) and a read-write token.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const [checkout, ...wanted] = process.argv.slice(2)
if (!checkout) {
  console.error('usage: node scripts/libsql-suite.mjs <libsql-client-ts checkout> [mode…]')
  process.exit(2)
}
const ALL = ['http-v2', 'ws-v2', 'libsql-v2', 'http-v3', 'ws-v3', 'libsql-v3', 'http-test_v3', 'ws-test_v3']
const modes = wanted.length ? wanted : ALL
for (const mode of modes) if (!ALL.includes(mode)) throw new Error(`unknown mode ${mode}; modes: ${ALL.join(' ')}`)

const suite = join(resolve(checkout), 'packages/libsql-client')
const clientVersion = JSON.parse(readFileSync(join(suite, 'package.json'), 'utf8')).version
const vitestVersion = JSON.parse(readFileSync(join(root, 'node_modules/vitest/package.json'), 'utf8')).version
const work = mkdtempSync(join(tmpdir(), 'tenantry-libsql-suite-'))
console.log(`work directory: ${work}`)

writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'libsql-suite-run', private: true, type: 'module' }))
execFileSync('npm', ['install', '--no-audit', '--no-fund', `@libsql/client@${clientVersion}`, `vitest@${vitestVersion}`], { cwd: work, stdio: 'inherit' })

// The suite's files, their imports pointed at vitest and the installed client.
mkdirSync(join(work, 't'))
for (const file of ['client.test.ts', 'helpers.ts']) {
  const text = readFileSync(join(suite, 'src/__tests__', file), 'utf8')
  writeFileSync(join(work, 't', file), text.replaceAll('"@jest/globals"', '"vitest"').replaceAll('"../node.js"', '"@libsql/client"'))
}

writeFileSync(
  join(work, 'vitest.config.mjs'),
  `import { defineConfig } from 'vitest/config'
const v3 = Boolean(process.env.HRANA3)
export default defineConfig({
  test: {
    globals: true,
    include: ['t/**/*.test.ts'],
    testTimeout: 30000,
    fileParallelism: false,
    setupFiles: v3 ? ['./force-hrana3.mjs'] : [],
    // Inlined, so that the mock below applies to the client's own import of hrana-client.
    server: { deps: { inline: v3 ? ['@libsql/client'] : [] } },
  },
})
`,
)

// @libsql/client opens every transport at Hrana 2; hrana-client takes the version as its last
// argument. At 3, HTTP probes /v3-protobuf and WebSocket offers hrana3-protobuf first. What was
// negotiated is appended to negotiated.log: HTTP paths requested, WebSocket versions.
writeFileSync(
  join(work, 'force-hrana3.mjs'),
  `import { appendFileSync } from 'node:fs'
import { afterAll, vi } from 'vitest'
const seen = new Map()
const count = (key) => seen.set(key, (seen.get(key) ?? 0) + 1)
vi.mock('@libsql/hrana-client', async (importOriginal) => {
  const original = await importOriginal()
  return {
    ...original,
    openHttp: (url, jwt, customFetch, key) =>
      original.openHttp(url, jwt, (request) => (count(new URL(request.url).pathname), (customFetch ?? fetch)(request)), key, 3),
    openWs: (url, jwt) => {
      const client = original.openWs(url, jwt, 3)
      client.getVersion().then((v) => count('ws version ' + v), () => count('ws failed'))
      return client
    },
  }
})
afterAll(() => appendFileSync(new URL('./negotiated.log', import.meta.url), process.env.URL + ' ' + JSON.stringify([...seen]) + '\\n'))
`,
)

// The server: a fresh home, one tenant, a read-write token; run from this repo's sources.
const home = join(work, 'home')
writeFileSync(
  join(work, 'start-server.ts'),
  `import { createTenantry, resolveConfig } from 'tenantry'
import { startServer } from '@tenantry/server'
const config = { home: ${JSON.stringify(home)}, migrations: { tenant: ${JSON.stringify(join(root, 'examples/cv-builder/migrations'))} }, dataSources: [{ id: 'local', engine: 'sqlite' }], server: {} }
const tenantry = await createTenantry(config as never)
await tenantry.tenants.create({ slug: 'suite' })
const { token } = await tenantry.tokens.create('suite', { readOnly: false })
await tenantry.close()
const server = await startServer({ config: resolveConfig(config as never), port: 0, repair: false, app: { logger: false } })
process.stdout.write('listening ' + server.url + ' ' + token + '\\n')
`,
)
const env = { ...process.env, TSX_TSCONFIG_PATH: 'tsconfig.test.json', TENANTRY_HOME: home, BETTER_AUTH_SECRET: 'libsql-suite-'.padEnd(40, 'x') }
delete env.TENANTRY_CATALOG_URL
const server = spawn(process.execPath, ['--import', 'tsx', join(work, 'start-server.ts')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
let output = ''
const [url, token] = await new Promise((resolveStart, reject) => {
  const seen = (chunk) => {
    output += String(chunk)
    const match = /listening (\S+) (\S+)/.exec(output)
    if (match) resolveStart([match[1], match[2]])
  }
  server.stdout.on('data', seen)
  server.stderr.on('data', seen)
  server.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening:\n${output}`)))
})

const urls = { http: url, ws: url.replace('http:', 'ws:'), libsql: `${url.replace('http:', 'libsql:')}?tls=0` }
try {
  for (const mode of modes) {
    const [transport, version] = mode.split('-')
    const report = join(work, `report-${mode}.json`)
    const runEnv = { ...process.env, URL: urls[transport], AUTH_TOKEN: token, SERVER: version === 'test_v3' ? 'test_v3' : 'sqld' }
    if (version !== 'v2') runEnv.HRANA3 = '1'
    try {
      execFileSync('npx', ['vitest', 'run', '--reporter=json', `--outputFile=${report}`], { cwd: work, env: runEnv, stdio: 'ignore' })
    } catch {
      // Failing tests exit non-zero; the report says which.
    }
    const result = JSON.parse(readFileSync(report, 'utf8'))
    console.log(`\n${mode}: ${result.numPassedTests} passed, ${result.numFailedTests} failed, ${result.numPendingTests} skipped (of ${result.numTotalTests})`)
    for (const file of result.testResults) {
      for (const test of file.assertionResults) {
        if (test.status !== 'failed') continue
        const message = test.failureMessages.join(' ')
        const kind = /SQL_FORBIDDEN/.test(message) ? 'schema change refused' : /no such table: t\b|expected \+0 to be 3/.test(message) ? 'on the refused table' : 'OTHER'
        console.log(`  ${kind.padEnd(22)} ${[...test.ancestorTitles, test.title].filter(Boolean).join(' > ')}${kind === 'OTHER' ? `: ${test.failureMessages[0]?.split('\n')[0]}` : ''}`)
      }
    }
  }
  const negotiated = join(work, 'negotiated.log')
  if (existsSync(negotiated)) console.log(`\nnegotiated at version 3 (URL, [what, times]):\n${readFileSync(negotiated, 'utf8')}`)
} finally {
  server.kill('SIGTERM')
}
