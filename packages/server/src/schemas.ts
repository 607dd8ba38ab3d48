import { z } from 'zod'

/** `{ error: { code, message } }`: how every route answers an error (see errors.ts). */
export const errorResponse = z
  .object({
    error: z.object({
      code: z.string().describe('A stable code, e.g. VALIDATION_FAILED, TENANT_NOT_FOUND'),
      message: z.string().describe('What went wrong, for people'),
    }),
  })
  .describe('An error')

/** The query of a route that takes no query parameters: any parameter is refused, by name. */
export const noQuery = z.strictObject({})

/** The body of a POST that takes no input: absent, or `{}`; any field is refused, by name. */
export const noBody = z.strictObject({}).optional()

/** A `204 No Content` answer. */
export const noContent = z.undefined().describe('No content')

/** A tenant slug in a path: checked against the catalog by the route, so a malformed one answers like an unknown one. */
export const slugParam = z.string().describe('The tenant slug').meta({ example: 'acme' })
