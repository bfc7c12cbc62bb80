-- runfleet execution: cancellation, journaled steps, budgets, sessions,
-- the command state machine, and run-level events.

-- Why a run is terminal, when it is not a plain completion: the failure
-- kind its later commands are refused with, and a readable reason.
ALTER TABLE runs
    ADD COLUMN failure_kind  text,
    ADD COLUMN status_reason text,
    -- What the run has spent per currency (`cost.<currency>` metric events).
    ADD COLUMN spent         jsonb NOT NULL DEFAULT '{}';

-- A cancel request, kept whether or not the run or command exists yet: a
-- command cancelled before it starts never runs. command_id '' = the whole run.
CREATE TABLE cancel_requests (
    tenant        text        NOT NULL,
    run_id        text        NOT NULL,
    command_id    text        NOT NULL DEFAULT '',
    reason        text,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, run_id, command_id)
);

-- A session: continuity across runs, bound to one tenant, project and
-- backend profile for good. Session ids are global, so that reusing one
-- across tenants is refused (tenant-policy-denied) rather than silently
-- becoming another tenant's session.
CREATE TABLE sessions (
    session_id       text        PRIMARY KEY,
    tenant           text        NOT NULL,
    project          text        NOT NULL,
    backend_profile  text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_by_session ON runs (session_id, created_at) WHERE session_id IS NOT NULL;

-- Legal command transitions only:
--   pending → acknowledged | running | terminal
--   acknowledged → running | terminal
--   running → running (a new claim after a crash) | terminal
--   terminal (completed, failed, cancelled, timed-out) → nothing
-- An illegal transition is refused (the statement fails and the worker logs it).
CREATE FUNCTION commands_legal_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status AND OLD.status NOT IN ('completed', 'failed', 'cancelled', 'timed-out') THEN
        RETURN NEW;
    END IF;
    IF OLD.status IN ('completed', 'failed', 'cancelled', 'timed-out')
       OR NEW.status = 'pending'
       OR (NEW.status = 'acknowledged' AND OLD.status <> 'pending') THEN
        RAISE EXCEPTION 'illegal command transition % -> % (tenant %, run %, command %)',
            OLD.status, NEW.status, OLD.tenant, OLD.run_id, OLD.command_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER commands_legal_transition BEFORE UPDATE OF status ON commands
    FOR EACH ROW EXECUTE FUNCTION commands_legal_transition();

-- Moves a run's next_seq past commands that already have receipts (a
-- command cancelled or given up on before its turn).
CREATE FUNCTION runfleet_skip_receipted(p_tenant text, p_run_id text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_next bigint;
BEGIN
    SELECT r.next_seq INTO v_next FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id;
    LOOP
        PERFORM 1 FROM commands c
          JOIN journal j ON j.tenant = c.tenant AND j.run_id = c.run_id
                        AND j.command_id = c.command_id AND j.step = 'receipt'
         WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.seq = v_next;
        EXIT WHEN NOT FOUND;
        v_next := v_next + 1;
    END LOOP;
    UPDATE runs r SET next_seq = v_next
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id AND r.next_seq < v_next;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_begin_command (v2): as v1, plus
--   cancelled     the command (or its run) was cancelled: record a cancelled receipt
--   run-terminal  now also says which failure kind refuses it (failure_kind)
--   claimed       also returns the run's spec (run.create) and what it has spent
-- ---------------------------------------------------------------------------
DROP FUNCTION runfleet_begin_command(text, text, text, bigint, text, jsonb, text, bytea, bigint, text, bigint);
CREATE FUNCTION runfleet_begin_command(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_kind text,
    p_message jsonb, p_key text, p_hash bytea, p_attempt bigint, p_worker text,
    p_lease_ms bigint)
RETURNS TABLE (outcome text, fencing_token bigint, next_event_seq bigint, receipt jsonb,
               detail text, failure_kind text, run_spec jsonb, spent jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    known   record;
    run     record;
    stored  jsonb;
    claim   boolean;
    cancel  record;
    v_cancelled boolean;
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
                NULL::text, NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
        IF known.payload_hash <> p_hash OR known.command_id <> p_command_id OR known.seq <> p_seq THEN
            RETURN QUERY SELECT 'conflict', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('idempotency key %L was first used by command %s (seq %s) with a different payload',
                       p_key, known.command_id, known.seq),
                NULL::text, NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
        SELECT j.result INTO stored FROM journal j
         WHERE j.tenant = p_tenant AND j.run_id = p_run_id AND j.command_id = p_command_id
           AND j.step = 'receipt';
        IF FOUND THEN
            RETURN QUERY SELECT 'replay', NULL::bigint, NULL::bigint, stored, NULL::text,
                NULL::text, NULL::jsonb, NULL::jsonb;
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
            NULL::text, NULL::jsonb, NULL::jsonb;
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
                              payload_hash, status, attempt, worker_id, fencing_token, started_at)
        VALUES (p_tenant, p_run_id, p_command_id, p_seq, p_kind, p_message, p_key, p_hash,
                CASE WHEN claim THEN 'running' ELSE 'acknowledged' END,
                CASE WHEN claim THEN p_attempt END, CASE WHEN claim THEN p_worker END,
                CASE WHEN claim THEN run.fencing_token + 1 END, CASE WHEN claim THEN now() END)
        ON CONFLICT DO NOTHING;
    ELSIF claim THEN
        UPDATE commands c
           SET status = 'running', attempt = p_attempt, worker_id = p_worker,
               fencing_token = run.fencing_token + 1, started_at = now()
         WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.command_id = p_command_id;
    END IF;

    IF run.status = 'cancelled' THEN
        RETURN QUERY SELECT 'cancelled', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s was cancelled%s; the command never ran', p_run_id,
                   coalesce(': ' || run.status_reason, '')),
            'cancelled'::text, NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;
    IF run.status IN ('completed', 'failed', 'blocked') THEN
        RETURN QUERY SELECT 'run-terminal', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s is %s%s; the command was not executed', p_run_id, run.status,
                   coalesce(' (' || run.status_reason || ')', '')),
            coalesce(run.failure_kind, 'run-terminal'), NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;
    IF v_cancelled THEN
        RETURN QUERY SELECT 'cancelled', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('command %s was cancelled before it started%s', p_command_id,
                   coalesce(': ' || cancel.reason, '')),
            'cancelled'::text, NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;
    IF run.next_seq <> p_seq THEN
        RETURN QUERY SELECT 'wait', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('seq %s of run %s waits for seq %s', p_seq, p_run_id, run.next_seq),
            NULL::text, NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;
    IF NOT claim THEN
        RETURN QUERY SELECT 'wait', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s is leased to %s until %s', p_run_id, run.lease_holder, run.lease_expires_at),
            NULL::text, NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;

    UPDATE runs r
       SET fencing_token = run.fencing_token + 1, lease_holder = p_worker,
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
           status = 'claimed', updated_at = now()
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id;
    RETURN QUERY SELECT 'claimed', run.fencing_token + 1, run.next_event_seq, NULL::jsonb,
        NULL::text, NULL::text, run.spec, run.spent;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_renew_lease (v2): 'ok', 'lost' (another claim is newer) or
-- 'cancelled' (the command or its run was cancelled: stop it).
-- ---------------------------------------------------------------------------
DROP FUNCTION runfleet_renew_lease(text, text, bigint, bigint);
CREATE FUNCTION runfleet_renew_lease(
    p_tenant text, p_run_id text, p_command_id text, p_token bigint, p_lease_ms bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    UPDATE runs SET lease_expires_at = now() + p_lease_ms * interval '1 millisecond'
     WHERE tenant = p_tenant AND run_id = p_run_id AND fencing_token = p_token
     RETURNING status INTO v_status;
    IF NOT FOUND THEN
        RETURN 'lost';
    END IF;
    IF v_status = 'cancelled' OR EXISTS (
        SELECT 1 FROM cancel_requests cr
         WHERE cr.tenant = p_tenant AND cr.run_id = p_run_id AND cr.command_id = p_command_id) THEN
        RETURN 'cancelled';
    END IF;
    RETURN 'ok';
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_complete_command (v2): as v1, plus the run's new spending
-- (p_spent, NULL = unchanged) and, when the command ends the run, its status,
-- failure kind and reason. A run already terminal (cancelled meanwhile)
-- keeps its status. Then skips commands that already have receipts.
-- ---------------------------------------------------------------------------
DROP FUNCTION runfleet_complete_command(text, text, text, bigint, bigint, bigint, text, jsonb, jsonb, text);
CREATE FUNCTION runfleet_complete_command(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_token bigint,
    p_attempt bigint, p_status text, p_receipt jsonb, p_events jsonb, p_run_status text,
    p_spent jsonb, p_run_failure_kind text, p_run_reason text)
RETURNS TABLE (outcome text, receipt jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_terminal boolean;
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
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id AND r.fencing_token = p_token
    RETURNING r.status IN ('completed', 'failed', 'blocked', 'cancelled') INTO v_terminal;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'fenced', NULL::jsonb;
        RETURN;
    END IF;
    WITH new_events AS (
        INSERT INTO events (tenant, run_id, seq, command_id, event, at)
        SELECT p_tenant, p_run_id, (e ->> 'seq')::bigint, p_command_id, e, (e ->> 'at')::timestamptz
          FROM jsonb_array_elements(p_events) AS e
    ), receipt AS (
        INSERT INTO journal (tenant, run_id, command_id, step, attempt, fencing_token, status, result)
        VALUES (p_tenant, p_run_id, p_command_id, 'receipt', p_attempt, p_token, p_status, p_receipt)
    )
    UPDATE commands c SET status = p_status, finished_at = now()
     WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.command_id = p_command_id;
    -- Rarely true (the next command was cancelled or given up on before its
    -- turn): one lookup instead of the skip function's three.
    IF EXISTS (SELECT 1 FROM commands c
                 JOIN journal j ON j.tenant = c.tenant AND j.run_id = c.run_id
                               AND j.command_id = c.command_id AND j.step = 'receipt'
                WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.seq = p_seq + 1) THEN
        PERFORM runfleet_skip_receipted(p_tenant, p_run_id);
    END IF;
    RETURN QUERY SELECT 'committed', p_receipt;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_record_receipt (v2): as v1, and skips past receipted commands.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION runfleet_record_receipt(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_attempt bigint,
    p_status text, p_receipt jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    stored jsonb;
BEGIN
    PERFORM 1 FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id FOR UPDATE;
    INSERT INTO journal (tenant, run_id, command_id, step, attempt, fencing_token, status, result)
    SELECT p_tenant, p_run_id, p_command_id, 'receipt', p_attempt, r.fencing_token, p_status, p_receipt
      FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id
    ON CONFLICT DO NOTHING;
    SELECT j.result INTO stored FROM journal j
     WHERE j.tenant = p_tenant AND j.run_id = p_run_id AND j.command_id = p_command_id
       AND j.step = 'receipt';
    IF stored = p_receipt THEN
        UPDATE commands c SET status = p_status, finished_at = now()
         WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.command_id = p_command_id;
        PERFORM runfleet_skip_receipted(p_tenant, p_run_id);
    END IF;
    RETURN stored;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_record_step: journals a step's result write-once under the
-- claim's fencing token. 'recorded' (this result), 'exists' (an earlier
-- result, returned), or 'fenced' (the claim was superseded; nothing written).
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_record_step(
    p_tenant text, p_run_id text, p_command_id text, p_step text, p_attempt bigint,
    p_token bigint, p_result jsonb)
RETURNS TABLE (outcome text, result jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    -- FOR SHARE: a concurrent claim (FOR UPDATE) waits until this step is in.
    PERFORM 1 FROM runs r
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id AND r.fencing_token = p_token FOR SHARE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'fenced', NULL::jsonb;
        RETURN;
    END IF;
    INSERT INTO journal (tenant, run_id, command_id, step, attempt, fencing_token, status, result)
    VALUES (p_tenant, p_run_id, p_command_id, 'step:' || p_step, p_attempt, p_token, 'completed', p_result)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT 'recorded', p_result;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'exists', j.result FROM journal j
     WHERE j.tenant = p_tenant AND j.run_id = p_run_id AND j.command_id = p_command_id
       AND j.step = 'step:' || p_step;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_cancel: stores a cancel request and, for a whole run, makes the
-- run cancelled (terminal) unless it already is terminal.
-- outcome: 'cancelled', 'requested' (the run or command does not exist yet,
-- or the command has not started: it never will), 'terminal' (nothing to do).
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_cancel(p_tenant text, p_run_id text, p_command_id text, p_reason text)
RETURNS TABLE (outcome text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    -- The run's lock first: a concurrent runfleet_begin_command (which
    -- holds it while it decides) either sees this request or finished its
    -- claim before it, so the request is never missed by both sides.
    PERFORM 1 FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id FOR UPDATE;
    INSERT INTO cancel_requests (tenant, run_id, command_id, reason)
    VALUES (p_tenant, p_run_id, coalesce(p_command_id, ''), p_reason)
    ON CONFLICT DO NOTHING;
    IF p_command_id IS NULL THEN
        UPDATE runs r SET status = 'cancelled', failure_kind = 'cancelled',
                          status_reason = p_reason, updated_at = now()
         WHERE r.tenant = p_tenant AND r.run_id = p_run_id
           AND r.status NOT IN ('completed', 'failed', 'blocked', 'cancelled')
        RETURNING r.status INTO v_status;
        IF FOUND THEN
            RETURN QUERY SELECT 'cancelled', format('run %s cancelled', p_run_id);
        ELSIF EXISTS (SELECT 1 FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id) THEN
            RETURN QUERY SELECT 'terminal', format('run %s was already terminal', p_run_id);
        ELSE
            RETURN QUERY SELECT 'requested', format('run %s does not exist yet; it will be created cancelled', p_run_id);
        END IF;
        RETURN;
    END IF;
    SELECT c.status INTO v_status FROM commands c
     WHERE c.tenant = p_tenant AND c.run_id = p_run_id AND c.command_id = p_command_id;
    IF v_status IN ('completed', 'failed', 'cancelled', 'timed-out') THEN
        RETURN QUERY SELECT 'terminal', format('command %s was already %s', p_command_id, v_status);
    ELSIF v_status = 'running' THEN
        RETURN QUERY SELECT 'cancelled', format('command %s is being stopped', p_command_id);
    ELSE
        RETURN QUERY SELECT 'requested', format('command %s has not started; it never will', p_command_id);
    END IF;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_create_run (v2): as v1, plus sessions (a session is bound to its
-- first run's tenant, project and profile; another binding is refused and
-- the run is created blocked with tenant-policy-denied) and runs cancelled
-- before they were created. outcome adds 'denied' (detail says why).
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION runfleet_create_run(
    p_tenant text, p_run_id text, p_project text, p_profile text, p_session text,
    p_spec jsonb, p_key text, p_hash bytea)
RETURNS TABLE (outcome text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
    run      runs%ROWTYPE;
    session  sessions%ROWTYPE;
    v_denied text;
    v_cancel record;
    v_cancelled boolean;
BEGIN
    SELECT * INTO run FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id;
    IF FOUND THEN
        IF run.idempotency_key = p_key AND run.payload_hash = p_hash THEN
            IF run.failure_kind = 'tenant-policy-denied' THEN
                RETURN QUERY SELECT 'denied', run.status_reason;
            ELSE
                RETURN QUERY SELECT 'exists', NULL::text;
            END IF;
        ELSE
            RETURN QUERY SELECT 'conflict',
                format('run %s already exists under idempotency key %L with a different payload',
                       p_run_id, run.idempotency_key);
        END IF;
        RETURN;
    END IF;

    IF p_session IS NOT NULL THEN
        INSERT INTO sessions (session_id, tenant, project, backend_profile)
        VALUES (p_session, p_tenant, p_project, p_profile)
        ON CONFLICT DO NOTHING;
        SELECT * INTO session FROM sessions s WHERE s.session_id = p_session;
        IF session.tenant <> p_tenant THEN
            v_denied := format('session %s belongs to another tenant', p_session);
        ELSIF session.project <> p_project THEN
            v_denied := format('session %s belongs to project %s, not %s', p_session, session.project, p_project);
        ELSIF session.backend_profile <> p_profile THEN
            v_denied := format('session %s is bound to backend profile %s, not %s',
                               p_session, session.backend_profile, p_profile);
        END IF;
    END IF;
    SELECT cr.reason INTO v_cancel FROM cancel_requests cr
     WHERE cr.tenant = p_tenant AND cr.run_id = p_run_id AND cr.command_id = '';
    v_cancelled := FOUND;

    INSERT INTO runs (tenant, run_id, project, backend_profile, session_id, spec, idempotency_key,
                      payload_hash, status, failure_kind, status_reason)
    VALUES (p_tenant, p_run_id, p_project, p_profile,
            CASE WHEN v_denied IS NULL THEN p_session END, p_spec, p_key, p_hash,
            CASE WHEN v_denied IS NOT NULL THEN 'blocked'
                 WHEN v_cancelled THEN 'cancelled' ELSE 'pending' END,
            CASE WHEN v_denied IS NOT NULL THEN 'tenant-policy-denied'
                 WHEN v_cancelled THEN 'cancelled' END,
            coalesce(v_denied, CASE WHEN v_cancelled THEN v_cancel.reason END))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        -- Created concurrently: answer as for an existing run.
        RETURN QUERY SELECT * FROM runfleet_create_run(p_tenant, p_run_id, p_project, p_profile,
                                                       p_session, p_spec, p_key, p_hash);
        RETURN;
    END IF;
    IF v_denied IS NOT NULL THEN
        RETURN QUERY SELECT 'denied', v_denied;
    ELSE
        RETURN QUERY SELECT 'created', NULL::text;
    END IF;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_append_run_event: a run-level event outside any command (a
-- per-run process closing when its worker stops), given its body. Refused
-- ('busy') while another claim's lease is live, since that claim owns the
-- next event seqs; 'no-run' when the run does not exist. Returns the
-- stored event with its seq.
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_append_run_event(p_tenant text, p_run_id text, p_event jsonb)
RETURNS TABLE (outcome text, event jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    run     record;
    v_event jsonb;
BEGIN
    SELECT r.next_event_seq, r.lease_holder, r.lease_expires_at INTO run
      FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no-run', NULL::jsonb;
        RETURN;
    END IF;
    IF run.lease_holder IS NOT NULL AND run.lease_expires_at > now() THEN
        RETURN QUERY SELECT 'busy', NULL::jsonb;
        RETURN;
    END IF;
    v_event := p_event || jsonb_build_object('seq', run.next_event_seq);
    INSERT INTO events (tenant, run_id, seq, command_id, event, at)
    VALUES (p_tenant, p_run_id, run.next_event_seq, NULL, v_event, (v_event ->> 'at')::timestamptz);
    UPDATE runs r SET next_event_seq = r.next_event_seq + 1
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id;
    RETURN QUERY SELECT 'appended', v_event;
END $$;
