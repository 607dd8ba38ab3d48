import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TenantRecord } from 'tenantry'
import { tempDir } from 'tenantry/testing'

// Each package `npm pack`s into a tarball that installs into a fresh app, outside the
// monorepo, next to the others, and works there with plain `node`: no workspace links, no
// hoisted root dependencies, no TypeScript loader. A missing `files` entry, an export that
// points nowhere, or a runtime import that only the monorepo's root provides fails here.

const REPO = fileURLToPath(new URL('../', import.meta.url))
const PACKAGES = ['packages/core', 'packages/server', 'packages/cli', 'packages/client']
/** Installing compiles better-sqlite3 where no prebuilt binary can be fetched: minutes on a busy machine. */
const INSTALL_TIMEOUT_MS = 15 * 60_000

interface Run {
  code: number
  stdout: string
  stderr: string
}

/**
 * The environment without what an enclosing `npm test` exports (`npm_config_*`,
 * `npm_package_*`): npm run from inside the app must see the app, not this repo. Kept: the
 * headers to build addons against, which `npm test -- --node 24` sets for the Node it runs on
 * (scripts/node.mjs), so the app's better-sqlite3 is built for that Node.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if ((!/^npm_/i.test(name) && !name.startsWith('TENANTRY_') && name !== 'INIT_CWD') || name === 'npm_config_nodedir') env[name] = value
  }
  return { ...env, ...extra }
}

function run(command: string, args: string[], cwd: string, timeout = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr })
    })
  })
}

async function succeed(command: string, args: string[], cwd: string, timeout?: number): Promise<string> {
  const result = await run(command, args, cwd, timeout)
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.code}\n${result.stderr.slice(-4000)}\n${result.stdout.slice(-2000)}`)
  }
  return result.stdout
}

// The result goes to a file: the server's own log lines share stdout.
const APP_SCRIPT = `import { writeFileSync } from 'node:fs'
import { createTenantry, loadConfig } from 'tenantry'
import { startServer } from '@tenantry/server'
import { runCli } from '@tenantry/cli'

const config = await loadConfig()
const tenantry = await createTenantry(config)
await tenantry.createTenant({ slug: 'acme', name: 'Acme Inc' })
const notes = await tenantry.withTenant('acme', async () => {
  await tenantry.db().insertInto('notes').values({ body: 'hello from a packed tenantry' }).execute()
  return tenantry.db().selectFrom('notes').select(['id', 'body']).execute()
})
await tenantry.close()

// The CLI by name, in this process.
let listed = ''
const code = await runCli(['tenant', 'list', '--json'], {
  streams: { stdout: { write: (text) => (listed += text) }, stderr: process.stderr },
})

const server = await startServer({ config, port: 0, handleSignals: false })
try {
  const response = await fetch(server.url + '/healthz')
  const health = { status: response.status, body: await response.json() }
  writeFileSync('result.json', JSON.stringify({ notes, cli: { code, slugs: JSON.parse(listed).map((t) => t.slug) }, health }))
} finally {
  await server.close()
}
`

interface Manifest {
  name: string
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
}

const readJson = <T>(path: string) => JSON.parse(readFileSync(path, 'utf8')) as T

/** The package a bare specifier names: `better-auth/api` → `better-auth`, `@scope/x/y` → `@scope/x`. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
}

/**
 * Whether TypeScript finds the types of `specifier`, imported from `fromFile`, in the
 * package itself rather than in `@types/…`, resolving as a consumer's NodeNext project does.
 */
function shipsTypes(specifier: string, fromFile: string): boolean {
  const options = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext }
  const resolved = ts.resolveModuleName(specifier, fromFile, options, ts.sys).resolvedModule
  return resolved !== undefined && !/[\\/]node_modules[\\/]@types[\\/]/.test(resolved.resolvedFileName)
}

/**
 * What a built package needs that its manifest does not declare: for each bare import in
 * `dist/**\/*.js`, a dependency (or peer); for each in `dist/**\/*.d.ts`, also its types
 * (`@types/<name>` as a dependency when the package ships none). In the monorepo the root
 * `node_modules` hides all of these; in a user's app they are missing packages.
 */
function undeclaredImports(packageDir: string): string[] {
  const manifest = readJson<Manifest>(join(REPO, packageDir, 'package.json'))
  const declared = new Set([manifest.name, ...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})])
  const builtins = new Set(builtinModules)
  /** Missing package → the first file that imports it. */
  const missing = new Map<string, string>()
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) visit(path)
      if (!entry.isFile() || !/\.(js|d\.ts)$/.test(entry.name)) continue
      const types = entry.name.endsWith('.d.ts')
      for (const { fileName } of ts.preProcessFile(readFileSync(path, 'utf8'), true, true).importedFiles) {
        if (fileName.startsWith('.') || fileName.startsWith('node:') || builtins.has(fileName)) continue
        const name = packageOf(fileName)
        const where = relative(join(REPO, packageDir), path)
        if (!declared.has(name)) {
          if (!missing.has(name)) missing.set(name, where)
        } else if (types && name !== manifest.name && !shipsTypes(fileName, path)) {
          const typesName = `@types/${name.replace(/^@([^/]+)\//, '$1__')}`
          if (!declared.has(typesName) && !missing.has(typesName)) missing.set(typesName, where)
        }
      }
    }
  }
  visit(join(REPO, packageDir, 'dist'))
  return [...missing].map(([name, where]) => `${name} (imported by ${where})`).sort()
}

describe('package manifests', () => {
  // Regression: @tenantry/server imported kysely and tenantry imported zod without declaring them.
  it.each(PACKAGES)('%s declares every package its built code imports', (packageDir) => {
    expect(undeclaredImports(packageDir)).toEqual([])
  })
})

describe('packages installed from their tarballs into a fresh app', () => {
  const work = tempDir('tenantry-packaging-')
  const tarballs = join(work.path, 'tarballs')
  const app = join(work.path, 'app')

  beforeAll(async () => {
    if (PACKAGES.some((p) => !existsSync(join(REPO, p, 'dist/index.js')))) {
      execFileSync('npx', ['tsc', '-b'], { cwd: REPO, stdio: 'inherit' })
    }
    mkdirSync(tarballs)
    // --ignore-scripts: pack the dist this run was built with, not rebuild it under other tests.
    const packed = JSON.parse(
      await succeed('npm', ['pack', ...PACKAGES.flatMap((p) => ['-w', p]), '--pack-destination', tarballs, '--ignore-scripts', '--json'], REPO),
    ) as Array<{ filename: string }>
    expect(packed.map((p) => p.filename).sort()).toEqual(['tenantry-0.1.0.tgz', 'tenantry-cli-0.1.0.tgz', 'tenantry-client-0.1.0.tgz', 'tenantry-server-0.1.0.tgz'])

    mkdirSync(join(app, 'migrations'), { recursive: true })
    writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'packed-app', private: true, type: 'module' }, null, 2)}\n`)
    writeFileSync(join(app, 'tenantry.config.js'), `export default { migrations: { tenant: './migrations' } }\n`)
    writeFileSync(
      join(app, 'migrations', '0001_notes.js'),
      `export async function up(db) {
  await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text', (c) => c.notNull()).execute()
}
`,
    )
    writeFileSync(join(app, 'app.js'), APP_SCRIPT)
    // Dependencies come from the registry (the local npm cache first); ours only from the tarballs.
    await succeed(
      'npm',
      ['install', ...packed.map((p) => join(tarballs, p.filename)), '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock'],
      app,
      INSTALL_TIMEOUT_MS,
    )
  }, INSTALL_TIMEOUT_MS + 120_000)

  afterAll(() => work.cleanup())

  it('runs an app with plain node: a tenant, a query in its context, the CLI by name, and the server', async () => {
    await succeed(process.execPath, ['app.js'], app)
    const result = JSON.parse(readFileSync(join(app, 'result.json'), 'utf8')) as {
      notes: unknown
      cli: { code: number; slugs: string[] }
      health: { status: number; body: unknown }
    }
    expect(result.notes).toEqual([{ id: 1, body: 'hello from a packed tenantry' }])
    expect(result.cli).toEqual({ code: 0, slugs: ['acme'] })
    expect(result.health.status).toBe(200)
    // The app's data lives next to its config, not in the repo.
    expect(existsSync(join(app, '.tenantry', 'catalog.db'))).toBe(true)
  })

  it('the installed tenantry bin works from the app directory, and start creates no demo tenant', async () => {
    const listed = JSON.parse(await succeed('npx', ['--no', 'tenantry', 'tenant', 'list', '--json'], app)) as TenantRecord[]
    expect(listed.map((t) => [t.slug, t.name, t.status])).toEqual([['acme', 'Acme Inc', 'ready']])
    const rows = JSON.parse(await succeed('npx', ['--no', 'tenantry', 'sql', 'acme', 'select body from notes', '--json'], app)) as unknown
    expect(rows).toEqual({ rows: [{ body: 'hello from a packed tenantry' }] })

    const start = await succeed('npx', ['--no', 'tenantry', 'start', '--no-server'], app)
    expect(start).toContain('Tenantry is ready.')
    expect(start).not.toContain('demo')
    const after = JSON.parse(await succeed('npx', ['--no', 'tenantry', 'tenant', 'list', '--json'], app)) as TenantRecord[]
    expect(after.map((t) => t.slug)).toEqual(['acme'])
  })

  it('the browser SDK installs with its own dependencies and its entry points load', async () => {
    const script = "const m = await import('@tenantry/client'); const t = await import('@tenantry/client/testing'); console.log(JSON.stringify([typeof m.createClient, typeof t.runConformance]))"
    expect(JSON.parse(await succeed(process.execPath, ['--input-type=module', '-e', script], app))).toEqual(['function', 'function'])
  })
})
