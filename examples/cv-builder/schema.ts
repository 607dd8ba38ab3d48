import type { Generated } from 'kysely'

/**
 * Seed 000's CV builder: a person's jobs and the highlights (achievements) under each,
 * tagged with domains and skills so a CV can be filtered for one application.
 */
export interface JobsTable {
  id: Generated<number>
  company: string
  title: string
  location: string | null
  /** ISO date (YYYY-MM-DD). */
  start_date: string
  /** ISO date, or null for the current job. */
  end_date: string | null
  description: string | null
  created_at: Generated<string>
  updated_at: Generated<string>
}

export interface HighlightsTable {
  id: Generated<number>
  job_id: number
  content: string
  /** JSON array of strings, e.g. ["fintech", "payments"]. */
  domains: string
  /** JSON array of strings, e.g. ["typescript", "postgres"]. */
  skills: string
  /** A measurable result, e.g. "cut p95 latency by 40%". */
  metric: string | null
  /** Hidden highlights stay in the database but out of generated CVs. */
  hidden: Generated<number>
  position: Generated<number>
  created_at: Generated<string>
  updated_at: Generated<string>
}

export interface CvBuilderDatabase {
  jobs: JobsTable
  highlights: HighlightsTable
}
