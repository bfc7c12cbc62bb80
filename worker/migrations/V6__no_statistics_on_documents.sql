-- No planner statistics for the documents the fleet stores whole.
--
-- Autovacuum's ANALYZE samples every column of a table that grows, and for a
-- jsonb or bytea column it sorts the sampled values (jsonb_cmp) to build
-- their histogram. Under sustained load the tables grow fast and are
-- analyzed again and again: measured during a replay bench, ANALYZE took
-- about a tenth of the machine's CPU, most of it sorting these documents.
-- No query of the fleet filters, joins or sorts on them (each is read by its
-- row's key), so their statistics serve no plan; the key columns keep
-- theirs.
ALTER TABLE runs         ALTER COLUMN spec           SET STATISTICS 0,
                         ALTER COLUMN payload_hash   SET STATISTICS 0,
                         ALTER COLUMN spent          SET STATISTICS 0;
ALTER TABLE commands     ALTER COLUMN message        SET STATISTICS 0,
                         ALTER COLUMN payload_hash   SET STATISTICS 0,
                         ALTER COLUMN parked_message SET STATISTICS 0;
ALTER TABLE journal      ALTER COLUMN result         SET STATISTICS 0;
ALTER TABLE events       ALTER COLUMN event          SET STATISTICS 0;
ALTER TABLE dead_letters ALTER COLUMN message        SET STATISTICS 0;
