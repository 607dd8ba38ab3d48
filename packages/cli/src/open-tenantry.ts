import { resolve } from 'node:path'
import type { Command } from 'commander'
import {
  createTenantry,
  findConfigFile,
  loadConfig,
  type CreateTenantryOptions,
  type ResolvedConfig,
  type Tenantry,
} from 'tenantry'

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
  const tenantry = await createTenantry(config, createOptions)
  try {
    return await fn(tenantry, config)
  } finally {
    await tenantry.close()
  }
}
