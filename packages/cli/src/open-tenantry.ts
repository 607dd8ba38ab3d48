import { resolve } from 'node:path'
import type { Command } from 'commander'
import {
  createTenantry,
  findConfigFile,
  loadConfig,
  type CreateTenantryOptions,
  type Logger,
  type ResolvedConfig,
  type Tenantry,
} from 'tenantry'
import { createCliLogger } from './logger.js'

/** Options every command accepts. */
export interface GlobalOptions {
  /** Path of `tenantry.config.*`; found from the working directory upwards when absent. */
  config?: string
}

/** The config file in use: `--config`, else the nearest `tenantry.config.*` upwards, else none (defaults). */
export function configFileOf(command: Command): string | undefined {
  const { config } = command.optsWithGlobals<GlobalOptions>()
  return config ? resolve(config) : findConfigFile()
}

/** Loads the config the command line names (or finds), with defaults and environment applied. */
export function loadCommandConfig(command: Command): Promise<ResolvedConfig> {
  return loadConfig(configFileOf(command))
}

/**
 * The logger for Tenantry under `command`: one line per warning on the program's stderr,
 * as JSON when the command was given `--json`.
 */
export function commandLogger(command: Command): Logger {
  // Every subcommand inherits the program's output configuration (see createProgram).
  const { writeErr } = command.configureOutput()
  const write = writeErr ?? ((text: string) => void process.stderr.write(text))
  return createCliLogger(write, { json: Boolean(command.optsWithGlobals<{ json?: boolean }>().json) })
}

/**
 * Opens Tenantry for one command, runs `fn`, and always closes it, so the process exits
 * as soon as the command is done.
 */
export async function withTenantry<T>(
  command: Command,
  fn: (tenantry: Tenantry, config: ResolvedConfig) => Promise<T>,
  options: CreateTenantryOptions & { config?: ResolvedConfig } = {},
): Promise<T> {
  const { config: loaded, ...createOptions } = options
  const config = loaded ?? (await loadCommandConfig(command))
  const tenantry = await createTenantry(config, { logger: commandLogger(command), ...createOptions })
  try {
    return await fn(tenantry, config)
  } finally {
    await tenantry.close()
  }
}
