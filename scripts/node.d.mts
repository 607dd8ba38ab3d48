// Types of scripts/node.mjs for the TypeScript that imports it (bench/node-versions.ts).
export interface PreparedNode {
  /** The Node binary. */
  node: string
  /** Its version, e.g. `v24.22.3`. */
  version: string
  /** The environment to run under it: its bin first on PATH, the rebuilt native addons preloaded. */
  env: NodeJS.ProcessEnv
}
export function prepareNode(major: string | number, options?: { log?: (text: string) => void }): PreparedNode
export function takeNodeOption(args: readonly string[]): { major: string | undefined; rest: string[] }
