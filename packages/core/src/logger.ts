/**
 * The logger Tenantry writes to: the structural subset of pino's `Logger` that core uses, so
 * a pino instance (or Fastify's `app.log`) can be passed as it is, and core depends on no
 * logging library.
 *
 * Each method takes an object of facts first (always `tenantId` where one is known, and
 * `err` for an error) and a message second, as pino does.
 *
 * @example
 * import pino from 'pino'
 * const tenantry = await createTenantry(config, { logger: pino() })
 */
export interface Logger {
  error(facts: Record<string, unknown>, message: string): void
  warn(facts: Record<string, unknown>, message: string): void
  info(facts: Record<string, unknown>, message: string): void
  debug(facts: Record<string, unknown>, message: string): void
}

/** A logger that drops everything: the default when none is passed. */
export const SILENT_LOGGER: Logger = Object.freeze({
  error() {},
  warn() {},
  info() {},
  debug() {},
})
