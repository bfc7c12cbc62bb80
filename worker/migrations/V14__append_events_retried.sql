-- V14: a retried append of live events whose first try was stored.
--
-- The worker keeps a batch of live events when its append fails, and sends
-- it again at the next flush. When the failure was only the answer (the
-- connection dropped after the commit), the run's log has already moved on
-- by that batch, and V12 answered the retry 'fenced': the worker would then
-- stop a command whose claim it still holds. Now such a retry answers
-- 'appended' (and writes nothing) when the claim is still this token's and
-- the batch's last event is in the log exactly as sent.

CREATE OR REPLACE FUNCTION runfleet_append_events(p_tenant text, p_run_id text, p_command_id text,
                                                  p_token bigint, p_events jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_first bigint := (p_events -> 0 ->> 'seq')::bigint;
    v_last  bigint := (p_events -> -1 ->> 'seq')::bigint;
BEGIN
    UPDATE runs r
       SET next_event_seq = r.next_event_seq + jsonb_array_length(p_events)
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id AND r.fencing_token = p_token
       AND r.next_event_seq = v_first;
    IF FOUND THEN
        INSERT INTO events (tenant, run_id, seq, command_id, event, at)
        SELECT p_tenant, p_run_id, (e ->> 'seq')::bigint, p_command_id, e, (e ->> 'at')::timestamptz
          FROM jsonb_array_elements(p_events) AS e;
        RETURN 'appended';
    END IF;
    IF EXISTS (SELECT 1 FROM runs r
                WHERE r.tenant = p_tenant AND r.run_id = p_run_id AND r.fencing_token = p_token)
       AND EXISTS (SELECT 1 FROM events e
                    WHERE e.tenant = p_tenant AND e.run_id = p_run_id AND e.seq = v_last
                      AND e.command_id = p_command_id AND e.event = p_events -> -1) THEN
        RETURN 'appended';
    END IF;
    RETURN 'fenced';
END $$;
