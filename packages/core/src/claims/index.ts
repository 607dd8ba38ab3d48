/** Claims (issue 10): staging a browser's local data in chunks, then applying it in one transaction. */
export { ClaimStore, type ClaimRows, type StagedChunk, type StageResult } from './claim-store.js'
export { applyClaim, claimProblems, type ApplyClaimOptions, type ClaimCollection, type ClaimProblem, type ClaimResult } from './apply-claim.js'
