/**
 * The CV builder's collections, declared once: `tenantry.config.ts` serves them through the
 * data API (`server.collections`), and the browser app passes the same object to
 * `@tenantry/client`, which derives its row types and its local validation from it.
 */
export const collections = {
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
      // The table's foreign key (migrations/0001): a job's highlights go with it.
      job_id: { type: 'integer', required: true, filterable: true, references: 'jobs', onDelete: 'cascade' },
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
} as const

/**
 * What the tables' own defaults give the columns a create leaves out (migrations/0001): the
 * local backend cannot read them from the declaration, so the app passes them to it.
 */
export const localDefaults = {
  highlights: { domains: '[]', skills: '[]', hidden: false, position: 0 },
}
