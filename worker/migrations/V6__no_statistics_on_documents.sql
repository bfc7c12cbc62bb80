-- No planner statistics for the documents the fleet stores whole.
--
-- Autovacuum's ANALYZE samples every column of a table that grows, and for a
-- jsonb or bytea column it sorts the sampled values (jsonb_cmp) to build
-- their histogram. Under sustained load the tables grow fast and are
-- analyzed again and again: measured during a replay bench, ANALYZE took
-- about a tenth of the machine's CPU, most of it sorting these documents.
-- Every query of the fleet reaches these rows by their key columns first and
-- only then looks at a document (`spec ? 'budgets'`, a hash compared, a
-- parked message present), so no plan depends on their statistics; the key
-- columns keep theirs.
ALTER TABLE runs         ALTER COLUMN spec           SET STATISTICS 0,
                         ALTER COLUMN payload_hash   SET STATISTICS 0,
                         ALTER COLUMN spent          SET STATISTICS 0;
ALTER TABLE commands     ALTER COLUMN message        SET STATISTICS 0,
                         ALTER COLUMN payload_hash   SET STATISTICS 0,
                         ALTER COLUMN parked_message SET STATISTICS 0;
ALTER TABLE journal      ALTER COLUMN result         SET STATISTICS 0;
ALTER TABLE events       ALTER COLUMN event          SET STATISTICS 0;
ALTER TABLE dead_letters ALTER COLUMN message        SET STATISTICS 0;
