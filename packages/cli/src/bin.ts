import { runCli } from './program.js'

// A closed pipe (`tenantry tenant list | head -1`) must not crash the command half way:
// it finishes its work and closes Tenantry; only the unread output is lost.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error
  })
}

// Set the exit code rather than calling process.exit, so pending output is flushed first.
process.exitCode = await runCli(process.argv.slice(2))
