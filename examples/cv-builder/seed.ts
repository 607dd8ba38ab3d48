import type { Kysely } from 'kysely'
import type { CvBuilderDatabase } from './schema.js'

/** A little data for demos, tests and benchmarks: two jobs with tagged highlights. */
export async function seedCvBuilder(db: Kysely<CvBuilderDatabase>, owner = 'Ada'): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const current = await trx
      .insertInto('jobs')
      .values({ company: `${owner} Labs`, title: 'Staff Engineer', location: 'Remote', start_date: '2023-02-01', end_date: null, description: 'Platform team lead' })
      .returning('id')
      .executeTakeFirstOrThrow()
    const previous = await trx
      .insertInto('jobs')
      .values({ company: 'Ledgerly', title: 'Senior Engineer', location: 'Berlin', start_date: '2019-05-01', end_date: '2023-01-31', description: 'Payments' })
      .returning('id')
      .executeTakeFirstOrThrow()
    await trx
      .insertInto('highlights')
      .values([
        { job_id: current.id, content: 'Moved 4,000 customers to per-tenant databases', domains: '["saas"]', skills: '["sqlite","typescript"]', metric: 'zero downtime', position: 0 },
        { job_id: current.id, content: 'Built the migration fan-out runner', domains: '["saas"]', skills: '["kysely"]', metric: '10k tenants in 40s', position: 1 },
        { job_id: previous.id, content: 'Cut card authorisation latency', domains: '["fintech","payments"]', skills: '["postgres"]', metric: 'p95 -40%', position: 0 },
      ])
      .execute()
  })
}
