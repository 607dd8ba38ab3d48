export { createApp } from './app.js'
export type { CreateAppOptions } from './app.js'
export { HttpError, toHttpError, SERVER_ERROR_CODES } from './errors.js'
export type { Principal, AdmittedTenant } from './principal.js'
