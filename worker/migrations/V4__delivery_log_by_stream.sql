-- A delivery record belongs to one stored message, and a stream sequence is
-- unique only within its stream: key the log by stream and sequence (and
-- tenant, so one tenant's history can never show in another's dead letter).
-- Records written before this migration name no stream and are left out of
-- every history.
ALTER TABLE delivery_log
    ADD COLUMN stream text NOT NULL DEFAULT '',
    ADD COLUMN tenant text NOT NULL DEFAULT '';
ALTER TABLE delivery_log ALTER COLUMN stream DROP DEFAULT;
ALTER TABLE delivery_log ALTER COLUMN tenant DROP DEFAULT;
DROP INDEX delivery_log_by_message;
CREATE INDEX delivery_log_by_message ON delivery_log (stream, stream_sequence, tenant, attempt);
