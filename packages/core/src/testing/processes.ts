import { execFileSync } from 'node:child_process'

export { isProcessAlive } from '../processes.js'

/** The pids of this process's children that are SQL executor processes (`pgrep`), for tests that check none is left behind. */
export function executorProcesses(): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(process.pid), '-f', 'executor-process'], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
  } catch {
    return [] // pgrep exits 1 when nothing matches
  }
}
