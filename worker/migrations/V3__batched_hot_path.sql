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

-- ---------------------------------------------------------------------------
-- No foreign keys on the hot tables. Every row of commands, events and
-- journal is written by a journal function (or the set-based settle) that
-- has found the run, under its lock, and the command's row before its
-- receipt; the checks added nothing but their cost: on the benchmark they
-- were 40% of the settle statement (each check takes a KEY SHARE lock on a
-- run row the statement already holds FOR UPDATE).
-- ---------------------------------------------------------------------------
ALTER TABLE commands DROP CONSTRAINT commands_tenant_run_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_tenant_run_id_fkey;
ALTER TABLE journal DROP CONSTRAINT journal_tenant_run_id_command_id_fkey;

-- ---------------------------------------------------------------------------
-- runfleet_settle_pure: the fused settle of one pure command, for small
-- batches (the set-based statement has a fixed cost of about a millisecond,
-- which a batch of a few commands would pay alone). It answers as the
-- set-based settle for the commands that statement settles ('completed',
-- with the claim's fencing token and the first event's seq, and `waiter`),
-- 'slow' (nothing written) where that statement would leave the command to
-- the two-step path for its run's sake (profile, bundle, budgets, close),
-- and otherwise as runfleet_begin_command does (replay, conflict, no-run,
-- cancelled, run-terminal, wait).
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_settle_pure(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_kind text,
    p_message jsonb, p_key text, p_hash bytea, p_attempt bigint, p_worker text,
    p_profile text, p_receipt jsonb, p_events jsonb)
RETURNS TABLE (outcome text, fencing_token bigint, next_event_seq bigint, receipt jsonb,
               detail text, failure_kind text, waiter boolean)
LANGUAGE plpgsql AS $$
DECLARE
    known    record;
    run      record;
    stored   jsonb;
    cancel   record;
    v_cancelled boolean;
    v_token  bigint;
    v_count  bigint;
    v_status text;
    v_next   record;
    v_waiter boolean;
BEGIN
    SELECT c.command_id, c.seq, c.idempotency_key, c.payload_hash INTO known
      FROM commands c
     WHERE c.tenant = p_tenant AND c.run_id = p_run_id
       AND (c.idempotency_key = p_key OR c.command_id = p_command_id OR c.seq = p_seq)
     ORDER BY (c.idempotency_key = p_key) DESC
     LIMIT 1;
    IF FOUND THEN
        IF known.idempotency_key <> p_key THEN
            RETURN QUERY SELECT 'conflict', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('command %s (seq %s) already exists under idempotency key %L',
                       known.command_id, known.seq, known.idempotency_key),
                NULL::text, false;
            RETURN;
        END IF;
        IF known.payload_hash <> p_hash OR known.command_id <> p_command_id OR known.seq <> p_seq THEN
            RETURN QUERY SELECT 'conflict', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('idempotency key %L was first used by command %s (seq %s) with a different payload',
                       p_key, known.command_id, known.seq),
                NULL::text, false;
            RETURN;
        END IF;
        SELECT j.result INTO stored FROM journal j
         WHERE j.tenant = p_tenant AND j.run_id = p_run_id AND j.command_id = p_command_id
           AND j.step = 'receipt';
        IF FOUND THEN
            RETURN QUERY SELECT 'replay', NULL::bigint, NULL::bigint, stored, NULL::text,
                NULL::text, false;
            RETURN;
        END IF;
    END IF;

    SELECT r.status, r.next_seq, r.lease_holder, r.lease_expires_at, r.fencing_token,
           r.next_event_seq, r.failure_kind, r.status_reason, r.backend_profile,
           (r.spec ? 'resource_bundle' OR r.spec ? 'budgets') AS needs_claim
      INTO run
      FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no-run', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s of tenant %s does not exist', p_run_id, p_tenant),
            NULL::text, false;
        RETURN;
    END IF;
    IF run.backend_profile <> p_profile OR run.needs_claim OR p_kind = 'close' THEN
        RETURN QUERY SELECT 'slow', NULL::bigint, NULL::bigint, NULL::jsonb, NULL::text,
            NULL::text, false;
        RETURN;
    END IF;
    SELECT cr.reason INTO cancel FROM cancel_requests cr
     WHERE cr.tenant = p_tenant AND cr.run_id = p_run_id AND cr.command_id = p_command_id;
    v_cancelled := FOUND;

    IF run.status IN ('completed', 'failed', 'blocked', 'cancelled') OR v_cancelled
       OR run.next_seq <> p_seq
       OR (run.lease_holder IS NOT NULL AND run.lease_expires_at > now()) THEN
        -- Not settled now: recorded as runfleet_begin_command records it, and
        -- answered as it answers.
        IF known IS NULL THEN
            INSERT INTO commands (tenant, run_id, command_id, seq, kind, message, idempotency_key,
                                  payload_hash, status)
            VALUES (p_tenant, p_run_id, p_command_id, p_seq, p_kind, p_message, p_key, p_hash,
                    'acknowledged')
            ON CONFLICT DO NOTHING;
        END IF;
        IF run.status = 'cancelled' THEN
            RETURN QUERY SELECT 'cancelled', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('run %s was cancelled%s; the command never ran', p_run_id,
                       coalesce(': ' || run.status_reason, '')),
                'cancelled'::text, false;
        ELSIF run.status IN ('completed', 'failed', 'blocked') THEN
            RETURN QUERY SELECT 'run-terminal', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('run %s is %s%s; the command was not executed', p_run_id, run.status,
                       coalesce(' (' || run.status_reason || ')', '')),
                coalesce(run.failure_kind, 'run-terminal'), false;
        ELSIF v_cancelled THEN
            RETURN QUERY SELECT 'cancelled', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('command %s was cancelled before it started%s', p_command_id,
                       coalesce(': ' || cancel.reason, '')),
                'cancelled'::text, false;
        ELSIF run.next_seq <> p_seq THEN
            RETURN QUERY SELECT 'wait', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('seq %s of run %s waits for seq %s', p_seq, p_run_id, run.next_seq),
                NULL::text, false;
        ELSE
            RETURN QUERY SELECT 'wait', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('run %s is leased to %s until %s', p_run_id, run.lease_holder, run.lease_expires_at),
                NULL::text, false;
        END IF;
        RETURN;
    END IF;

    -- Claim and commit at once.
    v_token := run.fencing_token + 1;
    v_count := jsonb_array_length(p_events);
    v_status := p_receipt ->> 'status';
    p_receipt := p_receipt || jsonb_build_object(
        'fencing_token', v_token,
        'events', jsonb_build_object('first_seq', run.next_event_seq,
                                     'last_seq', run.next_event_seq + v_count - 1));
    IF known IS NULL THEN
        INSERT INTO commands (tenant, run_id, command_id, seq, kind, message, idempotency_key,
                              payload_hash, status, attempt, worker_id, fencing_token,
                              started_at, finished_at)
        VALUES (p_tenant, p_run_id, p_command_id, p_seq, p_kind, p_message, p_key, p_hash,
                v_status, p_attempt, p_worker, v_token, now(), now());
    ELSE
        UPDATE commands c
           SET status = v_status, attempt = p_attempt, worker_id = p_worker,
               fencing_token = v_token, started_at = now(), finished_at = now()
         WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.command_id = p_command_id;
    END IF;
    INSERT INTO events (tenant, run_id, seq, command_id, event, at)
    SELECT p_tenant, p_run_id, run.next_event_seq + e.n - 1, p_command_id,
           e.body || jsonb_build_object('seq', run.next_event_seq + e.n - 1),
           (e.body ->> 'at')::timestamptz
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(body, n);
    INSERT INTO journal (tenant, run_id, command_id, step, attempt, fencing_token, status, result)
    VALUES (p_tenant, p_run_id, p_command_id, 'receipt', p_attempt, v_token, v_status, p_receipt);
    UPDATE runs r
       SET fencing_token = v_token, next_seq = p_seq + 1,
           next_event_seq = run.next_event_seq + v_count,
           status = 'claimed', updated_at = now()
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id;

    SELECT EXISTS (SELECT 1 FROM journal j
                    WHERE j.tenant = c.tenant AND j.run_id = c.run_id
                      AND j.command_id = c.command_id AND j.step = 'receipt') AS receipted
      INTO v_next
      FROM commands c WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.seq = p_seq + 1;
    v_waiter := FOUND;
    IF v_waiter AND v_next.receipted THEN
        PERFORM runfleet_skip_receipted(p_tenant, p_run_id);
    END IF;
    RETURN QUERY SELECT 'completed', v_token, run.next_event_seq, NULL::jsonb, NULL::text,
        NULL::text, v_waiter;
END $$;
