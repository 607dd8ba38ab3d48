export { runConformance, CONFORMANCE_TESTS } from './conformance.js'
export type { ConformanceOptions, ConformanceTest } from './conformance.js'
export { tempDir, findPostgres, createTestDatabase, dropAppRoles, TEST_POSTGRES_URL } from './services.js'
