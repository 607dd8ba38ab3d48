import { runEngineConformance } from '../../testing/engine-conformance.js'
import { tempDir } from '../../testing/services.js'
import { SqliteEngine } from './sqlite-engine.js'

const dir = tempDir('tenantry-sqlite-engine-')

runEngineConformance({
  engine: new SqliteEngine({ directory: dir.path }),
  isolation: 'database',
  teardown: async () => dir.cleanup(),
})
