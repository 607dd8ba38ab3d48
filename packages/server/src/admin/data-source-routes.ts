import { constants } from 'node:fs'
import { access, mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { z } from 'zod'
import { engineDefinition, isTenantryError, parseDataSourceConfig, type DataSourceConfig, type DataSourceRecord } from 'tenantry'
import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noQuery } from '../schemas.js'
import { actor, requirePlatformAdmin } from './routes.js'
import { addDataSourceBody, dataSourceList, dataSourceParams, dataSourceTestResult, dataSourceView, patchDataSourceBody } from './schemas.js'

type AddBody = z.infer<typeof addDataSourceBody>

/**
 * `/api/admin/data-sources`: list, add, test and change data sources (platform admins), as
 * `tenantry data-source add|list|test` does. A Postgres URL arrives in the body over the
 * admin's signed-in session, is sealed by core, and is never answered nor put in a message:
 * every message from a connection test is scrubbed of it before it leaves.
 */
export function dataSourceRoutes(app: ServerInstance, { tenantry }: FeatureOptions): void {
  const tags = ['admin']
  const platformOnly = { onRequest: requirePlatformAdmin }

  /** Sources the config declares: recorded again from the config at every start, so changed there. */
  const declared = () => new Set(tenantry.config.dataSources.map((s) => s.id))

  async function view(source: DataSourceRecord, counts?: Map<string, number>): Promise<z.infer<typeof dataSourceView>> {
    const tenants = (counts ?? (await tenantry.catalog.placementCounts())).get(source.id) ?? 0
    return {
      id: source.id,
      engine: source.engine,
      mode: source.mode,
      capacity: source.capacity,
      region: source.region,
      createdAt: source.createdAt,
      tenants,
      location: location(source),
      hasCredentials: source.secret !== null,
      declaredInConfig: declared().has(source.id),
    }
  }

  async function find(id: string): Promise<DataSourceRecord> {
    const source = await tenantry.catalog.findDataSource(id)
    if (!source) throw new HttpError('NOT_FOUND', `Data source "${id}" not found`)
    return source
  }

  app.get(
    '/api/admin/data-sources',
    {
      ...platformOnly,
      schema: { tags, summary: 'Data sources (platform admins), with the tenants on each and where each is; no secrets', querystring: noQuery, response: { 200: dataSourceList } },
    },
    async () => {
      const [sources, counts] = await Promise.all([tenantry.catalog.listDataSources(), tenantry.catalog.placementCounts()])
      return { dataSources: await Promise.all(sources.map((s) => view(s, counts))) }
    },
  )

  app.post(
    '/api/admin/data-sources',
    {
      ...platformOnly,
      schema: {
        tags,
        summary: 'Add a data source (platform admins): tested before it is recorded; a Postgres URL is sealed and never answered',
        querystring: noQuery,
        body: addDataSourceBody,
        response: { 201: dataSourceView },
      },
    },
    async (request, reply) => {
      const body = request.body
      const source = toConfig(body, tenantry.config.home)
      const scrub = scrubber(body)
      try {
        parseDataSourceConfig(source)
      } catch (error) {
        // A bad id keeps core's INVALID_IDENTIFIER (400); any other refusal is the body's fault.
        if (isTenantryError(error, 'INVALID_CONFIG')) throw new HttpError('VALIDATION_FAILED', scrub(error.message))
        throw error
      }
      if (await tenantry.catalog.findDataSource(source.id)) throw new HttpError('DATA_SOURCE_EXISTS', `Data source "${source.id}" already exists`)
      if (source.engine === 'sqlite') await checkDirectory(source.id, source.directory)
      let added: DataSourceRecord
      try {
        added = await tenantry.dataSources.add(source)
      } catch (error) {
        if (isTenantryError(error, 'INVALID_IDENTIFIER')) {
          // Added by someone else between the check and the insert; else an id the engine refuses (400 as it is).
          if (await tenantry.catalog.findDataSource(source.id)) throw new HttpError('DATA_SOURCE_EXISTS', `Data source "${source.id}" already exists`)
          throw error
        }
        // The engine's own checks of the config (before any connection) name the data source first.
        if (isTenantryError(error, 'INVALID_CONFIG') && error.message.startsWith(`Data source ${source.id}:`)) {
          throw new HttpError('VALIDATION_FAILED', scrub(error.message))
        }
        throw testFailure(error, scrub)
      }
      await tenantry.catalog.audit({
        action: 'data_source.added',
        actor: actor(request),
        details: { id: added.id, engine: added.engine, mode: added.mode, location: location(added), capacity: added.capacity, region: added.region },
      })
      return reply.status(201).send(await view(added))
    },
  )

  app.post(
    '/api/admin/data-sources/:id/test',
    {
      ...platformOnly,
      schema: {
        tags,
        summary: 'Connect to a data source and report what answered (platform admins); 422 DATA_SOURCE_TEST_FAILED with the reason when it cannot',
        params: dataSourceParams,
        querystring: noQuery,
        response: { 200: dataSourceTestResult },
      },
    },
    async (request) => {
      const source = await find(request.params.id)
      try {
        return await tenantry.dataSources.test(source.id)
      } catch (error) {
        // The sealed URL stays sealed: the driver's messages name user, host and database at most,
        // and any URL's userinfo is scrubbed all the same.
        throw testFailure(error, scrubber({}))
      }
    },
  )

  app.patch(
    '/api/admin/data-sources/:id',
    {
      ...platformOnly,
      schema: {
        tags,
        summary: "Change a data source's capacity, region or mode (platform admins); one declared in the config is changed there (409)",
        params: dataSourceParams,
        querystring: noQuery,
        body: patchDataSourceBody,
        response: { 200: dataSourceView },
      },
    },
    async (request) => {
      const source = await find(request.params.id)
      if (declared().has(source.id)) throw new HttpError('DATA_SOURCE_IN_CONFIG', `Data source "${source.id}" is declared in the config file: change it there (the config is recorded again at every start)`)
      const updated = await tenantry.catalog.updateDataSource(source.id, request.body)
      if (!updated) throw new HttpError('NOT_FOUND', `Data source "${source.id}" not found`)
      await tenantry.catalog.audit({ action: 'data_source.updated', actor: actor(request), details: { id: source.id, ...request.body } })
      return view(updated)
    },
  )
}

/** The body as core's data source config (the same shape the CLI builds from its options). */
function toConfig(body: AddBody, home: string): DataSourceConfig {
  const common = {
    id: body.id,
    ...(body.mode ? { mode: body.mode } : {}),
    ...(body.capacity ? { capacity: body.capacity } : {}),
    ...(body.region ? { region: body.region } : {}),
  }
  // As a config file's SQLite source: under Tenantry's home unless a directory is given.
  if (body.engine === 'sqlite') return { ...common, engine: 'sqlite', directory: body.directory ?? join(home, body.id) }
  return { ...common, engine: 'postgres', url: body.url!, ...(body.isolations ? { isolations: body.isolations } : {}) }
}

/** Where a data source is, as its engine describes it: never credentials (they are sealed). */
function location(source: Pick<DataSourceRecord, 'engine' | 'id' | 'config'>): string {
  try {
    return engineDefinition(source.engine, source.id).describe(source.config)
  } catch {
    return source.engine // an engine this server has not registered
  }
}

/**
 * SQLite's connection test only names the directory: here the directory must also be usable
 * (created if missing, writable), or the first tenant placed there would fail instead.
 */
async function checkDirectory(id: string, directory: string): Promise<void> {
  try {
    await mkdir(directory, { recursive: true })
    if (!(await stat(directory)).isDirectory()) throw new Error('not a directory')
    await access(directory, constants.R_OK | constants.W_OK)
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message
    throw new HttpError('DATA_SOURCE_TEST_FAILED', `Cannot use the SQLite data source ${id}: the directory ${directory} cannot be created or written (${reason})`)
  }
}

/** A failed connection test as a 422 with core's message (scrubbed); anything else as it is. */
function testFailure(error: unknown, scrub: (message: string) => string): unknown {
  if (isTenantryError(error, 'DATA_SOURCE_NOT_FOUND') || isTenantryError(error, 'INVALID_CONFIG')) {
    return new HttpError('DATA_SOURCE_TEST_FAILED', scrub(error.message))
  }
  return error
}

/** Removes the URL and its password from a message, whatever form a driver quoted them in. */
export function scrubber(body: { url?: string | undefined }): (message: string) => string {
  const url = body.url
  const secrets = new Set<string>()
  if (url) {
    secrets.add(url)
    try {
      const password = new URL(url).password
      if (password) {
        secrets.add(password)
        secrets.add(decodeURIComponent(password))
      }
    } catch {
      // not a URL: core refuses it with a message that does not quote it
    }
  }
  const ordered = [...secrets].filter((s) => s.length > 0).sort((a, b) => b.length - a.length)
  return (message) => {
    let scrubbed = message
    for (const secret of ordered) scrubbed = scrubbed.split(secret).join('***')
    // Any other connection URL's userinfo.
    return scrubbed.replace(/\b(postgres(?:ql)?:\/\/)[^\s/@]*@/gi, '$1***@')
  }
}
