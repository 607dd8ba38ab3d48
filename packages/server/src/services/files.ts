import type { FastifyReply, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import { checkContentType, checkFilePath, type FileStat } from 'tenantry'
import { z } from 'zod'
import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noContent, noQuery } from '../schemas.js'
import { assertWritable, inTenant } from '../tenants/resolve-tenant.js'

/**
 * The admitted tenant's files over HTTP (`tenantry.files`, issue 12), under `/files` of both
 * tenant prefixes: `PUT /files/<path>` stores the raw body (streamed, any content type, which
 * is kept and sent back), `GET /files/<path>` downloads with `Range` support (one range: 206;
 * past the end: 416), `GET /files` lists, `DELETE /files/<path>` removes. Any member or token
 * of the tenant reads; read-only tokens may not write (403 `READ_ONLY`).
 *
 * Registered as its own plugin so that its catch-all body parser (the raw stream, whatever the
 * content type) reaches these routes only; every other route keeps JSON bodies. Downloads are
 * served with `nosniff` and a sandboxing CSP, so an uploaded HTML or SVG file cannot run script
 * on the API's origin.
 */
export async function fileRoutes(app: ServerInstance, { tenantry }: FeatureOptions): Promise<void> {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (request, payload, done) => {
    // A form or text/plain body is a request a page on any site can make a browser send with
    // its cookie, without a preflight: with a session, refused as every other route refuses it.
    // Tokens (no browser sends one by itself) may upload any type.
    if (request.principal?.kind === 'user' && isPreflightFree(request.headers['content-type'])) {
      done(new HttpError('UNSUPPORTED_MEDIA_TYPE', 'With a session cookie, upload a file with its own type or application/octet-stream, not as a form or text/plain (which any site could send); or use a token'), undefined)
      return
    }
    done(null, payload)
  })
  const tags = ['files']
  const pathParams = z.object({ '*': z.string().describe('The file path, relative: folders separated by /').meta({ example: 'cv/2026.pdf' }) })

  app.get(
    '/files',
    {
      schema: {
        tags,
        summary: 'List files, in path order, a page at a time',
        querystring: z.strictObject({
          prefix: z.string().optional().describe('Only paths starting with it; end with / for one folder'),
          cursor: z.string().optional().describe('nextCursor of the previous page'),
          limit: z.coerce.number().int().min(1).max(1000).optional().describe('Default 100'),
        }),
        response: { 200: fileList },
      },
    },
    async (request) => inTenant(tenantry, request, () => tenantry.files.list(request.query)),
  )

  app.get(
    '/files/*',
    {
      schema: {
        tags,
        summary: 'Download a file (Range: one byte range, 206; past the end, 416)',
        params: pathParams,
        querystring: noQuery,
        response: { 200: z.unknown().describe('The file, with the content type it was stored with'), 206: z.unknown().describe('The requested range') },
      },
    },
    async (request, reply) => {
      const path = checkFilePath(request.params['*'])
      return inTenant(tenantry, request, async () => {
        const stat = await tenantry.files.stat(path)
        if (!stat) throw new HttpError('NOT_FOUND', `No file at ${JSON.stringify(path)}`)
        const range = parseRange(request.headers.range, stat.size)
        if (range === 'unsatisfiable') {
          reply.header('content-range', `bytes */${stat.size}`)
          throw new HttpError('RANGE_NOT_SATISFIABLE', `The file has ${stat.size} bytes`)
        }
        const file = await tenantry.files.get(path, range ? { range } : {})
        if (!file) throw new HttpError('NOT_FOUND', `No file at ${JSON.stringify(path)}`)
        fileHeaders(reply, file.stat)
        if (range) {
          reply.status(206).header('content-range', `bytes ${range.start}-${range.end}/${file.stat.size}`).header('content-length', range.end - range.start + 1)
        } else reply.header('content-length', file.stat.size)
        return reply.send(file.body)
      })
    },
  )

  app.put(
    '/files/*',
    { schema: { tags, summary: 'Upload a file (the raw body; its Content-Type is kept), replacing any file at the path', params: pathParams, querystring: noQuery, response: { 200: fileStat } } },
    async (request) => {
      assertWritable(request)
      const path = checkFilePath(request.params['*'])
      const contentType = checkContentType(request.headers['content-type'])
      const { maxFileBytes } = tenantry.files
      const declared = Number(request.headers['content-length'])
      if (declared > maxFileBytes) throw new HttpError('FILE_TOO_LARGE', `Files are at most ${maxFileBytes} bytes`)
      const body = request.body instanceof Readable ? request.body : Readable.from([])
      return inTenant(tenantry, request, () => tenantry.files.put(path, body, { contentType }))
    },
  )

  app.delete(
    '/files/*',
    { schema: { tags, summary: 'Remove a file', params: pathParams, querystring: noQuery, response: { 204: noContent } } },
    async (request, reply) => {
      assertWritable(request)
      const path = checkFilePath(request.params['*'])
      const removed = await inTenant(tenantry, request, () => tenantry.files.delete(path))
      if (!removed) throw new HttpError('NOT_FOUND', `No file at ${JSON.stringify(path)}`)
      return reply.status(204).send()
    },
  )
}

const fileStat = z.object({
  path: z.string(),
  size: z.number().int().describe('Bytes'),
  contentType: z.string(),
  modifiedAt: z.string(),
})
const fileList = z.object({ items: z.array(fileStat), nextCursor: z.string().optional().describe('Pass as cursor for the next page; absent on the last') })

function fileHeaders(reply: FastifyReply, stat: FileStat): void {
  reply
    .header('content-type', stat.contentType)
    .header('accept-ranges', 'bytes')
    .header('last-modified', new Date(stat.modifiedAt).toUTCString())
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', "default-src 'none'; sandbox")
}

/**
 * The one byte range of a `Range` header (RFC 9110 §14): `bytes=a-b`, `bytes=a-`, `bytes=-n`.
 * No header, another unit, several ranges or a malformed one: `undefined` (the whole file, as
 * the RFC allows a server to answer). A range starting past the end: `'unsatisfiable'`.
 */
export function parseRange(header: FastifyRequest['headers']['range'], size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = typeof header === 'string' ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  if (match[1] === '') {
    const suffix = Number(match[2])
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    return { start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(match[1])
  const end = match[2] === '' ? Number.POSITIVE_INFINITY : Number(match[2])
  if (end < start) return undefined
  if (start >= size) return 'unsatisfiable'
  return { start, end: Math.min(end, size - 1) }
}

/** The content types a cross-site page can send without a CORS preflight (the Fetch standard's "CORS-safelisted" ones). */
function isPreflightFree(contentType: string | undefined): boolean {
  const essence = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  return essence === 'text/plain' || essence === 'application/x-www-form-urlencoded' || essence === 'multipart/form-data'
}
