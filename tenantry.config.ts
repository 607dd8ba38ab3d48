import { defineConfig } from 'tenantry'

// The repo's own config: Tenantry on the embedded default (a SQLite catalog and one
// SQLite file per tenant under $TENANTRY_HOME, ./.tenantry by default), serving the
// CV builder example app of seed 000.
export default defineConfig({
  migrations: { tenant: './examples/cv-builder/migrations' },
  dataSources: [{ id: 'local', engine: 'sqlite', mode: 'shared', synchronous: 'NORMAL' }],
  defaults: { isolation: 'database', dataSource: 'local' },
  router: { placementTtlMs: 30_000, maxOpenHandles: 256 },
  // The HTTP server (@tenantry/server): the CV builder's tables served by the data API.
  server: {
    collections: {
      jobs: {
        primaryKey: 'id',
        defaultOrder: '-start_date',
        columns: {
          id: { type: 'integer', generated: true, filterable: true, sortable: true },
          company: { type: 'text', required: true, filterable: true, sortable: true, searchable: true, maxLength: 200 },
          title: { type: 'text', required: true, filterable: true, sortable: true, searchable: true, maxLength: 200 },
          location: { type: 'text', nullable: true, filterable: true, sortable: true, maxLength: 200 },
          start_date: { type: 'date', required: true, filterable: true, sortable: true },
          end_date: { type: 'date', nullable: true, filterable: true, sortable: true },
          description: { type: 'text', nullable: true, searchable: true },
          created_at: { type: 'text', generated: true, sortable: true },
          updated_at: { type: 'text', generated: true, sortable: true },
        },
      },
      highlights: {
        primaryKey: 'id',
        defaultOrder: 'position',
        columns: {
          id: { type: 'integer', generated: true, filterable: true, sortable: true },
          job_id: { type: 'integer', required: true, filterable: true },
          content: { type: 'text', required: true, searchable: true },
          domains: { type: 'text', maxLength: 2000, searchable: true },
          skills: { type: 'text', maxLength: 2000, searchable: true },
          metric: { type: 'text', nullable: true, searchable: true },
          hidden: { type: 'boolean', filterable: true },
          position: { type: 'integer', filterable: true, sortable: true },
          created_at: { type: 'text', generated: true, sortable: true },
          updated_at: { type: 'text', generated: true, sortable: true },
        },
      },
    },
  },
})
