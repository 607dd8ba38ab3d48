import { SECRET_MAX_BYTES, SECRET_NAME_PATTERN } from 'tenantry'
import { z } from 'zod'

/** A tenant secret as the API shows it: its name and dates, never its value. */
export const secretRecord = z.object({
  name: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  createdBy: z.string().describe('Who set it first: user:<id>, cli:<os user> or system'),
  updatedBy: z.string(),
})

export const secretList = z.object({ items: z.array(secretRecord).describe('By name; values are never sent') })

export const secretNameParams = z.object({
  name: z.string().regex(SECRET_NAME_PATTERN, 'expected 1-128 of A-Z, a-z, 0-9, "_", "." and "-", starting with a letter').describe('The secret name')
    .meta({ example: 'STRIPE_SECRET_KEY' }),
})

export const setSecretBody = z.strictObject({
  value: z
    .string()
    .min(1)
    .refine((v) => Buffer.byteLength(v) <= SECRET_MAX_BYTES, `at most ${SECRET_MAX_BYTES} bytes`)
    .describe('The secret value; stored sealed with the tenant’s own key and never sent back'),
})
