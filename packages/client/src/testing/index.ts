/**
 * `@tenantry/client/testing`: the conformance suite every backend must pass with the same
 * results. It runs where the client runs (in the browser for the local backend), over the CV
 * builder's collections (examples/cv-builder/collections.ts), and records what each step
 * observed; a test compares the records of two backends and checks the expected values.
 */
export { runConformance, type Observation, type ConformanceClient } from './conformance.js'
