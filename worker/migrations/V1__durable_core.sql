-- runfleet durable core: runs, commands, the write-once journal, events,
-- dead letters, delivery history and worker registrations.
--
-- Every row is keyed by tenant first: no query can reach another tenant's
-- rows without naming that tenant.

CREATE TABLE runs (
    tenant            text        NOT NULL,
    run_id            text        NOT NULL,
    project           text        NOT NULL,
    backend_profile   text        NOT NULL,
    session_id        text,
    spec              jsonb       NOT NULL,           -- the run.create message
    idempotency_key   text        NOT NULL,
    payload_hash      bytea       NOT NULL,
    status            text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'claimed', 'completed', 'failed', 'blocked', 'cancelled')),
    -- The claim: incremented by every claim; writes carrying an older token are refused.
    fencing_token     bigint      NOT NULL DEFAULT 0,
    lease_holder      text,
    lease_expires_at  timestamptz,
    -- The seq of the next command allowed to execute (last receipted seq + 1).
    next_seq          bigint      NOT NULL DEFAULT 1,
    -- The seq the run's next event gets.
    next_event_seq    bigint      NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, run_id)
);

CREATE TABLE commands (
    tenant            text        NOT NULL,
    run_id            text        NOT NULL,
    command_id        text        NOT NULL,
    seq               bigint      NOT NULL CHECK (seq >= 1),
    kind              text        NOT NULL,
    message           jsonb       NOT NULL,           -- the command.create message
    idempotency_key   text        NOT NULL,
    payload_hash      bytea       NOT NULL,
    status            text        NOT NULL DEFAULT 'acknowledged'
        CHECK (status IN ('pending', 'acknowledged', 'running', 'completed', 'failed', 'cancelled', 'timed-out')),
    attempt           bigint,
    worker_id         text,
    fencing_token     bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    PRIMARY KEY (tenant, run_id, command_id),
    UNIQUE (tenant, run_id, idempotency_key),
    UNIQUE (tenant, run_id, seq),
    FOREIGN KEY (tenant, run_id) REFERENCES runs (tenant, run_id)
);

-- Write-once: a (command, step) row is inserted once and never updated.
-- The step named 'receipt' holds the command's receipt.
CREATE TABLE journal (
    tenant            text        NOT NULL,
    run_id            text        NOT NULL,
    command_id        text        NOT NULL,
    step              text        NOT NULL,
    attempt           bigint      NOT NULL,
    fencing_token     bigint      NOT NULL,
    status            text        NOT NULL,
    result            jsonb       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, run_id, command_id, step),
    FOREIGN KEY (tenant, run_id, command_id) REFERENCES commands (tenant, run_id, command_id)
);

CREATE FUNCTION journal_is_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal rows are write-once (% % step %)', OLD.run_id, OLD.command_id, OLD.step;
END $$;
CREATE TRIGGER journal_write_once BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION journal_is_write_once();

CREATE TABLE events (
    tenant            text        NOT NULL,
    run_id            text        NOT NULL,
    seq               bigint      NOT NULL CHECK (seq >= 1),
    command_id        text,
    event             jsonb       NOT NULL,           -- the event message
    at                timestamptz NOT NULL,
    PRIMARY KEY (tenant, run_id, seq),
    FOREIGN KEY (tenant, run_id) REFERENCES runs (tenant, run_id)
);

CREATE TABLE dead_letters (
    dead_letter_id    text        PRIMARY KEY,
    tenant            text        NOT NULL,
    reason            text        NOT NULL,
    subject           text        NOT NULL,
    stream_sequence   bigint      NOT NULL,
    message           jsonb       NOT NULL,           -- the dead-letter message
    created_at        timestamptz NOT NULL DEFAULT now(),
    redriven_at       timestamptz,
    -- One dead letter per stored message: a redelivery of a dead-lettered
    -- message (worker killed before its Term) finds this row.
    UNIQUE (stream_sequence, subject)
);
CREATE INDEX dead_letters_by_tenant ON dead_letters (tenant, created_at);

-- Deliveries that did not end a message (NAKs, failures), for dead letters'
-- delivery history.
CREATE TABLE delivery_log (
    stream_sequence   bigint      NOT NULL,
    attempt           bigint      NOT NULL,
    worker_id         text        NOT NULL,
    at                timestamptz NOT NULL DEFAULT now(),
    outcome           text        NOT NULL
);
CREATE INDEX delivery_log_by_message ON delivery_log (stream_sequence, attempt);

CREATE TABLE workers (
    worker_id         text        PRIMARY KEY,
    host              text        NOT NULL,
    pid               integer     NOT NULL,
    version           text        NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_seen         timestamptz NOT NULL DEFAULT now(),
    stopped_at        timestamptz
);

-- ---------------------------------------------------------------------------
-- runfleet_begin_command: one round trip that applies idempotency, records
-- the command, enforces per-run order and exclusivity, and claims the run
-- with an incremented fencing token.
--
-- outcome:
--   replay        the same key and payload have a receipt: `receipt` is it
--   conflict      the key (or command id, or seq) was used with another payload
--   no-run        the run does not exist (yet)
--   run-terminal  the run accepts no more commands
--   wait          an earlier seq has no receipt yet, or another claim's lease is live
--   claimed       execute now under `fencing_token`; events start at `next_event_seq`
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_begin_command(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_kind text,
    p_message jsonb, p_key text, p_hash bytea, p_attempt bigint, p_worker text,
    p_lease_ms bigint)
RETURNS TABLE (outcome text, fencing_token bigint, next_event_seq bigint, receipt jsonb, detail text)
LANGUAGE plpgsql AS $$
DECLARE
    known   record;
    run     record;
    stored  jsonb;
    claim   boolean;
BEGIN
    -- The same key, or the same command id or seq under another key: one lookup.
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
                       known.command_id, known.seq, known.idempotency_key);
            RETURN;
        END IF;
        IF known.payload_hash <> p_hash OR known.command_id <> p_command_id OR known.seq <> p_seq THEN
            RETURN QUERY SELECT 'conflict', NULL::bigint, NULL::bigint, NULL::jsonb,
                format('idempotency key %L was first used by command %s (seq %s) with a different payload',
                       p_key, known.command_id, known.seq);
            RETURN;
        END IF;
        SELECT j.result INTO stored FROM journal j
         WHERE j.tenant = p_tenant AND j.run_id = p_run_id AND j.command_id = p_command_id
           AND j.step = 'receipt';
        IF FOUND THEN
            RETURN QUERY SELECT 'replay', NULL::bigint, NULL::bigint, stored, NULL::text;
            RETURN;
        END IF;
    END IF;

    SELECT r.status, r.next_seq, r.lease_holder, r.lease_expires_at, r.fencing_token,
           r.next_event_seq
      INTO run
      FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no-run', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s of tenant %s does not exist', p_run_id, p_tenant);
        RETURN;
    END IF;
    claim := run.status NOT IN ('completed', 'failed', 'blocked', 'cancelled')
             AND run.next_seq = p_seq
             AND (run.lease_holder IS NULL OR run.lease_expires_at <= now());

    -- Record the command (once), already running when it is claimed now.
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

    IF run.status IN ('completed', 'failed', 'blocked', 'cancelled') THEN
        RETURN QUERY SELECT 'run-terminal', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s is %s; the command was not executed', p_run_id, run.status);
        RETURN;
    END IF;
    IF run.next_seq <> p_seq THEN
        RETURN QUERY SELECT 'wait', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('seq %s of run %s waits for seq %s', p_seq, p_run_id, run.next_seq);
        RETURN;
    END IF;
    IF NOT claim THEN
        RETURN QUERY SELECT 'wait', NULL::bigint, NULL::bigint, NULL::jsonb,
            format('run %s is leased to %s until %s', p_run_id, run.lease_holder, run.lease_expires_at);
        RETURN;
    END IF;

    UPDATE runs r
       SET fencing_token = run.fencing_token + 1, lease_holder = p_worker,
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
           status = 'claimed', updated_at = now()
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id;
    RETURN QUERY SELECT 'claimed', run.fencing_token + 1, run.next_event_seq, NULL::jsonb, NULL::text;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_renew_lease: extends a live claim; false when the claim was lost
-- (another worker claimed the run with a newer fencing token).
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_renew_lease(p_tenant text, p_run_id text, p_token bigint, p_lease_ms bigint)
RETURNS boolean LANGUAGE sql AS $$
    WITH renewed AS (
        UPDATE runs SET lease_expires_at = now() + p_lease_ms * interval '1 millisecond'
         WHERE tenant = p_tenant AND run_id = p_run_id AND fencing_token = p_token
         RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM renewed);
$$;

-- ---------------------------------------------------------------------------
-- runfleet_complete_command: the fenced commit of a command's outcome: its
-- events, its receipt (write-once), its state, and the run's progress, in
-- one transaction. outcome 'committed', or 'fenced' when the claim's token
-- is no longer the run's (nothing is written).
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_complete_command(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_token bigint,
    p_attempt bigint, p_status text, p_receipt jsonb, p_events jsonb, p_run_status text)
RETURNS TABLE (outcome text, receipt jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    -- The fencing check and the run's progress in one statement: the UPDATE
    -- matches only while the claim's token is still the run's.
    UPDATE runs r
       SET next_seq = p_seq + 1,
           next_event_seq = r.next_event_seq + jsonb_array_length(p_events),
           lease_holder = NULL, lease_expires_at = NULL,
           status = coalesce(p_run_status, r.status), updated_at = now()
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id AND r.fencing_token = p_token;
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
    RETURN QUERY SELECT 'committed', p_receipt;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_record_receipt: the outcome of a command that was not executed
-- under a claim (run terminal, retries exhausted). Write-once: returns the
-- receipt that is stored, which is an earlier one if there was one. Moves the
-- run past the command when it was the next in line.
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_record_receipt(
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
        UPDATE runs r SET next_seq = p_seq + 1, updated_at = now()
         WHERE r.tenant = p_tenant AND r.run_id = p_run_id AND r.next_seq = p_seq;
        END IF;
    RETURN stored;
END $$;

-- ---------------------------------------------------------------------------
-- runfleet_create_run: 'created', 'exists' (same key and payload: a no-op),
-- or 'conflict' (the run exists with another key or payload).
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_create_run(
    p_tenant text, p_run_id text, p_project text, p_profile text, p_session text,
    p_spec jsonb, p_key text, p_hash bytea)
RETURNS TABLE (outcome text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
    run runs%ROWTYPE;
BEGIN
    INSERT INTO runs (tenant, run_id, project, backend_profile, session_id, spec, idempotency_key, payload_hash)
    VALUES (p_tenant, p_run_id, p_project, p_profile, p_session, p_spec, p_key, p_hash)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT 'created', NULL::text;
        RETURN;
    END IF;
    SELECT * INTO run FROM runs r WHERE r.tenant = p_tenant AND r.run_id = p_run_id;
    IF run.idempotency_key = p_key AND run.payload_hash = p_hash THEN
        RETURN QUERY SELECT 'exists', NULL::text;
    ELSE
        RETURN QUERY SELECT 'conflict',
            format('run %s already exists under idempotency key %L with a different payload',
                   p_run_id, run.idempotency_key);
    END IF;
END $$;
