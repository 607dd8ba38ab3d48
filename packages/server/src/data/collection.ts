/**
 * A declared collection and its SQL live in core (`tenantry`'s collections/collection.ts), shared
 * by `tenantry.collection(name)` and this API's routes.
 */
export { Collection, constraintViolation, type ListQuery } from 'tenantry'
