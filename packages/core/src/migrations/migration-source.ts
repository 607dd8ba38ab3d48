import { TenantryError } from '../errors.js'
import { LEDGER_RECIPE, ledgerStep } from '../ledger/ledger.js'
import { SEARCH_RECIPE_KIND, searchIndexStep, type SearchIndexDeclaration } from '../search-index/search-index.js'
import { STATE_RECIPE, stateStep } from '../services/state/state-step.js'
import type { DerivedRecipe, DerivedStep } from './derived-step.js'
import { TenantMigrationSet, type MigrationSetSource } from './migration-set.js'

/** The derived steps another thread can make again, by recipe kind. */
const FACTORIES: Record<string, (args: unknown) => DerivedStep | undefined> = {
  [LEDGER_RECIPE.kind]: () => ledgerStep(),
  [STATE_RECIPE.kind]: () => stateStep(),
  [SEARCH_RECIPE_KIND]: (args) => searchIndexStep(args as SearchIndexDeclaration[]),
}

function stepFrom(recipe: DerivedRecipe): DerivedStep | undefined {
  const factory = FACTORIES[recipe.kind]
  if (!factory) throw new TenantryError('INVALID_MIGRATION', `Unknown derived migration step ${JSON.stringify(recipe.kind)}`)
  return factory(recipe.args)
}

/**
 * Loads, in this thread, the migration set that `source` describes (`TenantMigrationSet.source`):
 * the same files and derived steps, checked to be the same set. Files edited since the set was
 * first loaded make another key: refused (`INVALID_MIGRATION`), so a worker never runs
 * migrations its process did not load.
 */
export async function loadMigrationSource(source: MigrationSetSource): Promise<TenantMigrationSet> {
  const set = (await TenantMigrationSet.fromDirectory(source.directory)).withDerived(source.derived.map(stepFrom))
  if (set.key !== source.key) {
    throw new TenantryError(
      'INVALID_MIGRATION',
      `The migrations in ${source.directory} changed since this process loaded them; restart it to run the new set`,
    )
  }
  return set
}
