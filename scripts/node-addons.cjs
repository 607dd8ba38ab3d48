// Preloaded (NODE_OPTIONS=--require) by scripts/node.mjs when the suite or the bench runs under
// another Node major: loads the native addons rebuilt for that Node instead of the ones in
// node_modules, which stay built for the Node the machine runs. Every process and worker of the
// run preloads it, so `bindings`, `nativeBinding` or a plain require of the addon all get the
// rebuilt one. TENANTRY_NODE_ADDONS names a JSON map { "<addon in node_modules>": "<rebuilt addon>" }.
'use strict'
const { readFileSync, realpathSync } = require('node:fs')

const mapFile = process.env.TENANTRY_NODE_ADDONS
if (mapFile) {
  const map = JSON.parse(readFileSync(mapFile, 'utf8'))
  const real = (path) => {
    try {
      return realpathSync(path)
    } catch {
      return path
    }
  }
  const dlopen = process.dlopen
  // Every `.node` require ends in process.dlopen(module, filename): the one place to redirect.
  process.dlopen = function (module, filename, ...rest) {
    return dlopen.call(this, module, map[real(filename)] ?? filename, ...rest)
  }
}
