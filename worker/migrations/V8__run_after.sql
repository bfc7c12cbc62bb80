-- V8: run-after (`command.create.not_before`).
--
-- A command published with a `not_before` still ahead is recorded here, the
-- truth about what is delayed and until when, and its message is
-- acknowledged. A JetStream message schedule on RUNFLEET_TIMERS wakes it at
-- `not_before` (no polling); the worker that takes the wake-up publishes the
-- stored bytes on the command's subject again and deletes the row. The
-- resumer's sweep publishes any row the timer left behind (a schedule lost
-- with its stream, say) a few seconds after it was due.

CREATE TABLE delayed_commands (
    tenant      text        NOT NULL,
    run_id      text        NOT NULL,
    command_id  text        NOT NULL,
    seq         bigint      NOT NULL,
    not_before  timestamptz NOT NULL,
    -- The `command.create` message, the bytes as delivered.
    message     bytea       NOT NULL,
    delayed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant, run_id, command_id)
);

CREATE INDEX delayed_commands_due ON delayed_commands (not_before);

-- runfleet_parked_due (v8): as v5, but a command parked behind a delayed
-- earlier seq of its run does not expire: it waits as long as the delay.
CREATE OR REPLACE FUNCTION runfleet_parked_due(
    p_tenants text[], p_run_ids text[], p_before timestamptz, p_expired timestamptz,
    p_limit integer)
RETURNS TABLE (tenant text, run_id text, command_id text, message bytea,
               parked_at timestamptz, created_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT c.tenant, c.run_id, c.command_id, c.parked_message, c.parked_at, c.created_at
      FROM commands c
      JOIN runs r ON r.tenant = c.tenant AND r.run_id = c.run_id
     WHERE c.parked_at IS NOT NULL AND c.status = 'acknowledged'
       AND c.parked_message IS NOT NULL
       AND (p_tenants IS NULL
            OR (c.tenant, c.run_id) IN (SELECT * FROM unnest(p_tenants, p_run_ids)))
       AND (p_before IS NULL OR c.parked_at < p_before)
       AND (c.seq <= r.next_seq
            OR (c.created_at < p_expired
                AND NOT EXISTS (SELECT 1 FROM delayed_commands d
                                 WHERE d.tenant = c.tenant AND d.run_id = c.run_id
                                   AND d.seq < c.seq))
            OR r.status IN ('completed', 'failed', 'blocked', 'cancelled')
            OR EXISTS (SELECT 1 FROM cancel_requests cr
                        WHERE cr.tenant = c.tenant AND cr.run_id = c.run_id
                          AND cr.command_id = c.command_id))
     ORDER BY c.parked_at
     LIMIT p_limit
$$;
