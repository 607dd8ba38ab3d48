import type { Kysely } from 'kysely'

// The data API tests' tenant schema: one `notes` table whose two text columns are searchable.

export const notesMigration = {
  up: async (db: Kysely<any>) => {
    await db.schema
      .createTable('notes')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('title', 'text')
      .addColumn('body', 'text')
      .execute()
  },
}

export const notesCollections = {
  notes: {
    columns: {
      id: { type: 'integer', generated: true },
      title: { type: 'text', searchable: true },
      body: { type: 'text', nullable: true, searchable: true, maxLength: 20_000 },
    },
  },
} as const
