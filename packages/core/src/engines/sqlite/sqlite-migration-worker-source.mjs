// The migration worker run from the TypeScript source (the repo's tests): a worker thread does
// not inherit the process's `--import tsx`, so it registers tsx itself first. dist runs
// sqlite-migration-worker.js directly.
import { register } from 'tsx/esm/api'

register()
await import('./sqlite-migration-worker.ts')
