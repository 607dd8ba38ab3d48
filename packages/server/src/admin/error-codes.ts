/** Codes the admin routes answer with besides the server's own and core's (statuses: errors.ts). */
export const ADMIN_ERROR_CODES = {
  DATA_SOURCE_EXISTS: 'A data source with this id already exists',
  DATA_SOURCE_TEST_FAILED: 'The data source did not pass its connection test',
  DATA_SOURCE_IN_CONFIG: "This data source is declared in the config file: change it there (the config is recorded again at every start)",
} as const

export type AdminErrorCode = keyof typeof ADMIN_ERROR_CODES
