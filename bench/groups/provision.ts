import type { Tenantry } from 'tenantry'
import { openTenantry, slugFor } from '../fixtures.js'
import { compareThroughput, fmt, type BenchContext } from '../harness.js'

export async function provisionGroup(ctx: BenchContext): Promise<void> {
  const rounds = ctx.size(10, 5)
  const fromTemplate = ctx.size(100, 20)
  const replaying = ctx.size(20, 4)

  const template = await openTenantry(await ctx.workDir('template'))
  const replay = await openTenantry(await ctx.workDir('replay'), { provisioning: { useTemplates: false } })
  try {
    // The first create from a template builds it (migrate a scratch file, VACUUM INTO): timed apart.
    let started = performance.now()
    await template.createTenant({ slug: 'first' })
    const firstTemplateMs = performance.now() - started
    started = performance.now()
    await replay.createTenant({ slug: 'first' })
    const firstReplayMs = performance.now() - started
    ctx.log(`first create: ${fmt(firstTemplateMs)} ms with the template build, ${fmt(firstReplayMs)} ms replaying`)
    ctx.metric('firstCreateMs', { template: firstTemplateMs, replay: firstReplayMs })

    const creator = (tenantry: Tenantry, prefix: string) => {
      let next = 0
      return async (count: number) => {
        for (let i = 0; i < count; i++) await tenantry.createTenant({ slug: slugFor(prefix, next++) })
      }
    }
    const result = await compareThroughput({
      title: 'Provisioning, one createTenant() after another',
      baseline: 'replaying migrations',
      unit: 'tenants',
      rounds,
      warmupRounds: 1,
      opsPerRound: fromTemplate,
      variants: [
        { name: 'replaying migrations', run: creator(replay, 'r'), opsPerRound: replaying, note: 'provisioning.useTemplates: false' },
        { name: 'from template', run: creator(template, 't'), opsPerRound: fromTemplate, note: 'file copy of the sealed template' },
      ],
    })
    ctx.table(result)

    const tpl = result.rows.find((r) => r.name === 'from template')!
    const rep = result.rows.find((r) => r.name === 'replaying migrations')!
    ctx.goal({
      name: 'tenants/s from template',
      target: '≥ 1,000/s',
      measured: `${fmt(tpl.medianOpsPerSec)}/s`,
      met: tpl.medianOpsPerSec >= 1000,
    })
    const speedup = tpl.medianOpsPerSec / rep.medianOpsPerSec
    ctx.goal({
      name: 'template vs replaying migrations',
      target: '≥ 5× faster',
      measured: `${speedup.toFixed(2)}× (${fmt(tpl.medianOpsPerSec)} vs ${fmt(rep.medianOpsPerSec)} tenants/s)`,
      met: speedup >= 5,
    })
  } finally {
    await template.close()
    await replay.close()
  }
}
