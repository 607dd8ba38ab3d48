import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * The conformance suites' own data model: notes and their tags, in a TypeScript migration
 * and a `.sql` one, so that both kinds run on every engine. Ids are always given by the
 * tests, never generated, so the same DDL serves every engine.
 */
export const FIXTURE_MIGRATION_FILES: Readonly<Record<string, string>> = {
  '0001_notes.ts': `import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('notes')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('body', 'text')
    .execute()
  await db.schema
    .createTable('note_tags')
    .addColumn('note_id', 'integer', (c) => c.notNull().references('notes.id').onDelete('cascade'))
    .addColumn('tag', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('note_tags_pk', ['note_id', 'tag'])
    .execute()
}
`,
  '0002_note_tags_by_tag.sql': `-- Tags are looked up by name.
CREATE INDEX note_tags_by_tag ON note_tags (tag);
`,
}

/** The fixture's migration names, in order. */
export const FIXTURE_MIGRATIONS: readonly string[] = Object.keys(FIXTURE_MIGRATION_FILES).map((file) => file.replace(/\.[a-z]+$/, ''))

/** The fixture's tables, as the tests use them. */
export interface FixtureDatabase {
  notes: { id: number; title: string; body: string | null }
  note_tags: { note_id: number; tag: string }
}

/** Writes the fixture migrations (plus `extra` files) into `directory`, creating it; returns it. */
export async function writeFixtureMigrations(directory: string, extra: Readonly<Record<string, string>> = {}): Promise<string> {
  await mkdir(directory, { recursive: true })
  for (const [file, text] of Object.entries({ ...FIXTURE_MIGRATION_FILES, ...extra })) await writeFile(join(directory, file), text)
  return directory
}
