// `npm run bench -- --only client-size`: what `@tenantry/client` adds to a browser app, minified
// and gzipped, as Vite bundles it for production (tree-shaken: an app pays only for what it
// imports). Each way of using it against the libraries it is built on, bundled the same way:
// Dexie (the local backend's IndexedDB layer), zod (validation, shared with the server) and
// Better Auth's client (sign-in).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build, type Rollup } from 'vite'
import { fmt, repoRoot, type BenchContext } from '../harness.js'

const client = JSON.stringify(join(repoRoot, 'packages/client/src/index.ts'))

/** Entries: what an app imports, kept alive by assigning it to a global. */
const ENTRIES: ReadonlyArray<[name: string, source: string]> = [
  ['remote collections only (no Dexie)', `import { createClient, remoteBackend } from ${client}; globalThis.keep = [createClient, remoteBackend]`],
  ['local-first: remote + IndexedDB + claim (with Dexie)', `import { createClient, remoteBackend, localBackend, claimLocalData, resumeClaim } from ${client}; globalThis.keep = [createClient, remoteBackend, localBackend, claimLocalData, resumeClaim]`],
  ['everything: + auth + offline queue', `import * as all from ${client}; globalThis.keep = all`],
  ['baseline: Dexie alone', `import Dexie from 'dexie'; globalThis.keep = Dexie`],
  ['baseline: zod alone', `import { z } from 'zod'; globalThis.keep = z`],
  ['baseline: Better Auth client alone', `import { createAuthClient } from 'better-auth/client'; globalThis.keep = createAuthClient`],
]

export async function clientSizeGroup(ctx: BenchContext): Promise<void> {
  // Under the repo's node_modules, so the entries' bare imports resolve as an app's would.
  const cache = join(repoRoot, 'node_modules/.cache')
  await mkdir(cache, { recursive: true })
  const dir = await mkdtemp(join(cache, 'tenantry-bench-client-size-'))
  try {
    const sizes: Array<{ name: string; minified: number; gzip: number }> = []
    for (const [i, [name, source]] of ENTRIES.entries()) {
      const entry = join(dir, `entry-${i}.ts`)
      await writeFile(entry, `${source}\n`)
      const output = (await build({
        root: repoRoot,
        logLevel: 'silent',
        configFile: false,
        define: { 'process.env.NODE_ENV': '"production"' },
        build: { write: false, minify: true, target: 'es2022', modulePreload: false, rollupOptions: { input: entry } },
      })) as Rollup.RollupOutput | Rollup.RollupOutput[]
      const chunks = (Array.isArray(output) ? output : [output]).flatMap((o) => o.output).filter((o): o is Rollup.OutputChunk => o.type === 'chunk')
      const code = chunks.map((c) => c.code).join('\n')
      sizes.push({ name, minified: Buffer.byteLength(code), gzip: gzipSync(code, { level: 9 }).length })
    }
    const kib = (bytes: number) => fmt(bytes / 1024)
    ctx.table({
      kind: 'table',
      title: '@tenantry/client in a production bundle (Vite, minified; gzip level 9), KiB',
      headers: ['what the app imports', 'minified', 'gzip'],
      rows: sizes.map((s) => [s.name, kib(s.minified), kib(s.gzip)]),
    })
    const of = (prefix: string) => sizes.find((s) => s.name.startsWith(prefix))!
    const remote = of('remote')
    const localFirst = of('local-first')
    const dexie = of('baseline: Dexie')
    ctx.note(
      `remote-only validates nothing itself (the server does) and carries neither Dexie nor zod; local-first adds ${kib(localFirst.gzip - remote.gzip)} KiB gzip: ` +
        `Dexie (${kib(dexie.gzip)} KiB alone), the parts of zod the local backend validates with (as the server does), and the backend and claim`,
    )
    ctx.metric('sizes', sizes)
    ctx.goal({ name: 'remote-only client, gzip', target: '< 40 KiB', measured: `${kib(remote.gzip)} KiB`, met: remote.gzip < 40 * 1024 })
    ctx.goal({ name: 'local-first client with Dexie, gzip', target: '< 80 KiB', measured: `${kib(localFirst.gzip)} KiB`, met: localFirst.gzip < 80 * 1024 })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
