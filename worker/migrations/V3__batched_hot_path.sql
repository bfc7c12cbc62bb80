-- runfleet batched hot path. The worker calls the journal functions once per
-- batch (`unnest(...) CROSS JOIN LATERAL`, one prepared statement; the fused
-- settle of pure commands is one set-based statement of its own, in
-- worker/src/journal/settle.rs). Here: the "somebody waits" answer that lets
-- a worker skip the wake-up broadcast when nobody can be waiting.

-- ---------------------------------------------------------------------------
-- runfleet_complete_command (v3): as v2, plus `waiter`: whether the run's
-- next command is already recorded (a worker may hold it, waiting for its
-- turn). Read after the run's lock, so a waiter that committed its begin
-- before this commit is seen.
-- ---------------------------------------------------------------------------
DROP FUNCTION runfleet_complete_command(text, text, text, bigint, bigint, bigint, text, jsonb, jsonb, text, jsonb, text, text);
CREATE FUNCTION runfleet_complete_command(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_token bigint,
    p_attempt bigint, p_status text, p_receipt jsonb, p_events jsonb, p_run_status text,
    p_spent jsonb, p_run_failure_kind text, p_run_reason text)
RETURNS TABLE (outcome text, waiter boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_next record;
BEGIN
    UPDATE runs r
       SET next_seq = p_seq + 1,
           next_event_seq = r.next_event_seq + jsonb_array_length(p_events),
           lease_holder = NULL, lease_expires_at = NULL,
           status = CASE WHEN r.status IN ('completed', 'failed', 'blocked', 'cancelled') THEN r.status
                         ELSE coalesce(p_run_status, r.status) END,
           failure_kind = CASE WHEN r.status IN ('completed', 'failed', 'blocked', 'cancelled') THEN r.failure_kind
                               ELSE coalesce(p_run_failure_kind, r.failure_kind) END,
           status_reason = CASE WHEN r.status IN ('completed', 'failed', 'blocked', 'cancelled') THEN r.status_reason
                                ELSE coalesce(p_run_reason, r.status_reason) END,
           spent = coalesce(p_spent, r.spent),
           updated_at = now()
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id AND r.fencing_token = p_token;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'fenced', false;
        RETURN;
    END IF;
    INSERT INTO events (tenant, run_id, seq, command_id, event, at)
    SELECT p_tenant, p_run_id, (e ->> 'seq')::bigint, p_command_id, e, (e ->> 'at')::timestamptz
      FROM jsonb_array_elements(p_events) AS e;
    INSERT INTO journal (tenant, run_id, command_id, step, attempt, fencing_token, status, result)
    VALUES (p_tenant, p_run_id, p_command_id, 'receipt', p_attempt, p_token, p_status, p_receipt);
    UPDATE commands c SET status = p_status, finished_at = now()
     WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.command_id = p_command_id;
    SELECT EXISTS (SELECT 1 FROM journal j
                    WHERE j.tenant = c.tenant AND j.run_id = c.run_id
                      AND j.command_id = c.command_id AND j.step = 'receipt') AS receipted
      INTO v_next
      FROM commands c WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.seq = p_seq + 1;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'committed', false;
        RETURN;
    END IF;
    -- Rarely true (the next command was cancelled or given up on before its turn).
    IF v_next.receipted THEN
        PERFORM runfleet_skip_receipted(p_tenant, p_run_id);
    END IF;
    RETURN QUERY SELECT 'committed', true;
END $$;
