-- A command's retry budget counts its own executions, not deliveries; and a
-- command that waits long for its turn is parked here instead of held.
--
-- JetStream counts a delivery each time a message is handed to a worker,
-- including every message a worker merely held (waiting for its turn,
-- queued behind others) when it was SIGKILLed. Those deliveries are not the
-- command's failures. `executions` counts the claims of a command: each
-- time a worker started executing it. The worker ends a command `failed`
-- with `max-deliveries` once it has been started `RUNFLEET_MAX_ATTEMPTS`
-- times without an outcome; JetStream's `max_deliver` stays a far backstop.

ALTER TABLE commands ADD COLUMN executions integer NOT NULL DEFAULT 0;
UPDATE commands SET executions = 1 WHERE started_at IS NOT NULL;

-- Parking. A command that has waited for an earlier seq longer than a
-- moment is parked: `parked_at` is set and its message acknowledged, so no
-- worker holds it (a crash of that worker strands nothing, and it takes no
-- place in the consumer's max_ack_pending). When its turn comes (or can
-- never come: the run ended, the command was cancelled) a worker publishes
-- its stored message again, under the Nats-Msg-Id
-- `resume:<run_id>:<command_id>:<parked_at in µs>`, and only then clears
-- `parked_at` (a crash in between republishes the same id: deduplicated).
ALTER TABLE commands ADD COLUMN parked_at timestamptz;
-- The parked message's bytes exactly as delivered (jsonb would normalize
-- numbers and so change the payload hash the journal compares).
ALTER TABLE commands ADD COLUMN parked_message bytea;
CREATE INDEX commands_parked ON commands (parked_at) WHERE parked_at IS NOT NULL;

-- Parks a command that is still behind an earlier seq of an open run, with
-- its message's bytes; false when it is not to be parked (its turn came, it
-- was cancelled, its run ended).
CREATE FUNCTION runfleet_park_command(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_message bytea)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_next bigint;
BEGIN
    -- The run's lock orders this with the commit that moves the run on.
    SELECT r.next_seq INTO v_next FROM runs r
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id
       AND r.status NOT IN ('completed', 'failed', 'blocked', 'cancelled')
       FOR UPDATE;
    IF NOT FOUND OR v_next >= p_seq THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM cancel_requests cr
                WHERE cr.tenant = p_tenant AND cr.run_id = p_run_id
                  AND cr.command_id = p_command_id) THEN
        RETURN false;
    END IF;
    -- Always a new parking, even when one stands (this may be its own
    -- republished copy, whose parking is about to be cleared): the clear
    -- names the parking it clears, so it cannot clear this one.
    UPDATE commands c SET parked_at = clock_timestamp(), parked_message = p_message
     WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.command_id = p_command_id
       AND c.status = 'acknowledged';
    RETURN FOUND;
END $$;

-- The parked commands that are due: their run's turn, or never to come
-- (the run ended, the command was cancelled, or it was first seen before
-- p_expired: it has waited as long as it may). Of the given runs (after a
-- commit), or of every run parked before p_before (the sweep), at most
-- p_limit.
CREATE FUNCTION runfleet_parked_due(
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
            OR c.created_at < p_expired
            OR r.status IN ('completed', 'failed', 'blocked', 'cancelled')
            OR EXISTS (SELECT 1 FROM cancel_requests cr
                        WHERE cr.tenant = c.tenant AND cr.run_id = c.run_id
                          AND cr.command_id = c.command_id))
     ORDER BY c.parked_at
     LIMIT p_limit
$$;

-- ---------------------------------------------------------------------------
-- runfleet_begin_command (v5): as v2, and a claim counts an execution and
-- returns the count.
-- ---------------------------------------------------------------------------
DROP FUNCTION runfleet_begin_command(text, text, text, bigint, text, jsonb, text, bytea, bigint, text, bigint);
CREATE FUNCTION runfleet_begin_command(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_kind text,
    p_message jsonb, p_key text, p_hash bytea, p_attempt bigint, p_worker text,
    p_lease_ms bigint)
RETURNS TABLE (outcome text, fencing_token bigint, next_event_seq bigint, receipt jsonb,
               detail text, failure_kind text, run_spec jsonb, spent jsonb,
               executions integer)
LANGUAGE plpgsql AS $$
DECLARE
    known   record;
    run     record;
    stored  jsonb;
    claim   boolean;
    cancel  record;
    v_cancelled boolean;
    v_executions integer;
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
                NULL::text, NULL::jsonb, NULL::jsonb, NULL::integer;
            RETURN;
        END IF;
        IF known.payload_hash <> p_hash OR known.command_id <> p_command_id OR known.seq <> p_seq THEN
            RETURN QUERY SELECT 'conflict', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('idempotency key %L was first used by command %s (seq %s) with a different payload',
                       p_key, known.command_id, known.seq),
                NULL::text, NULL::jsonb, NULL::jsonb, NULL::integer;
            RETURN;
        END IF;
        SELECT j.result INTO stored FROM journal j
         WHERE j.tenant = p_tenant AND j.run_id = p_run_id AND j.command_id = p_command_id
           AND j.step = 'receipt';
        IF FOUND THEN
            RETURN QUERY SELECT 'replay', NULL::bigint, NULL::bigint, stored, NULL::text,
                NULL::text, NULL::jsonb, NULL::jsonb, NULL::integer;
            RETURN;
        END IF;
    END IF;

    SELECT r.status, r.next_seq, r.lease_holder, r.lease_expires_at, r.fencing_token,
           r.next_event_seq, r.failure_kind, r.status_reason, r.spec, r.spent
      INTO run
      FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no-run', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s of tenant %s does not exist', p_run_id, p_tenant),
            NULL::text, NULL::jsonb, NULL::jsonb, NULL::integer;
        RETURN;
    END IF;
    -- FOUND, not `cancel IS NULL`: a request without a reason is a record of nulls.
    SELECT cr.reason INTO cancel FROM cancel_requests cr
     WHERE cr.tenant = p_tenant AND cr.run_id = p_run_id AND cr.command_id = p_command_id;
    v_cancelled := FOUND;
    claim := run.status NOT IN ('completed', 'failed', 'blocked', 'cancelled')
             AND NOT v_cancelled
             AND run.next_seq = p_seq
             AND (run.lease_holder IS NULL OR run.lease_expires_at <= now());

    IF known IS NULL THEN
        INSERT INTO commands (tenant, run_id, command_id, seq, kind, message, idempotency_key,
                              payload_hash, status, attempt, worker_id, fencing_token, started_at,
                              executions)
        VALUES (p_tenant, p_run_id, p_command_id, p_seq, p_kind, p_message, p_key, p_hash,
                CASE WHEN claim THEN 'running' ELSE 'acknowledged' END,
                CASE WHEN claim THEN p_attempt END, CASE WHEN claim THEN p_worker END,
                CASE WHEN claim THEN run.fencing_token + 1 END, CASE WHEN claim THEN now() END,
                CASE WHEN claim THEN 1 ELSE 0 END)
        ON CONFLICT DO NOTHING;
        v_executions := 1;
    ELSIF claim THEN
        UPDATE commands c
           SET status = 'running', attempt = p_attempt, worker_id = p_worker,
               fencing_token = run.fencing_token + 1, started_at = now(),
               executions = c.executions + 1, parked_at = NULL, parked_message = NULL
         WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.command_id = p_command_id
        RETURNING c.executions INTO v_executions;
    END IF;

    IF run.status = 'cancelled' THEN
        RETURN QUERY SELECT 'cancelled', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s was cancelled%s; the command never ran', p_run_id,
                   coalesce(': ' || run.status_reason, '')),
            'cancelled'::text, NULL::jsonb, NULL::jsonb, NULL::integer;
        RETURN;
    END IF;
    IF run.status IN ('completed', 'failed', 'blocked') THEN
        RETURN QUERY SELECT 'run-terminal', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s is %s%s; the command was not executed', p_run_id, run.status,
                   coalesce(' (' || run.status_reason || ')', '')),
            coalesce(run.failure_kind, 'run-terminal'), NULL::jsonb, NULL::jsonb, NULL::integer;
        RETURN;
    END IF;
    IF v_cancelled THEN
        RETURN QUERY SELECT 'cancelled', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('command %s was cancelled before it started%s', p_command_id,
                   coalesce(': ' || cancel.reason, '')),
            'cancelled'::text, NULL::jsonb, NULL::jsonb, NULL::integer;
        RETURN;
    END IF;
    IF run.next_seq <> p_seq THEN
        RETURN QUERY SELECT 'wait', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('seq %s of run %s waits for seq %s', p_seq, p_run_id, run.next_seq),
            NULL::text, NULL::jsonb, NULL::jsonb, NULL::integer;
        RETURN;
    END IF;
    IF NOT claim THEN
        RETURN QUERY SELECT 'wait', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s is leased to %s until %s', p_run_id, run.lease_holder, run.lease_expires_at),
            NULL::text, NULL::jsonb, NULL::jsonb, NULL::integer;
        RETURN;
    END IF;

    UPDATE runs r
       SET fencing_token = run.fencing_token + 1, lease_holder = p_worker,
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
           status = 'claimed', updated_at = now()
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id;
    RETURN QUERY SELECT 'claimed', run.fencing_token + 1, run.next_event_seq, NULL::jsonb,
        NULL::text, NULL::text, run.spec, run.spent, v_executions;
END $$;
