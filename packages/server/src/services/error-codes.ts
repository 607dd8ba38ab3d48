/** Codes the tenant-services routes answer with besides the server's own and core's (statuses: errors.ts). */
export const SERVICES_ERROR_CODES = {
  RANGE_NOT_SATISFIABLE: 'The requested range starts past the end of the file',
  JOBS_UNAVAILABLE: 'Background jobs are not configured on this server',
} as const

export type ServicesErrorCode = keyof typeof SERVICES_ERROR_CODES
