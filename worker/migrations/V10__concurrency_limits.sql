-- V10: per-key concurrency limits (`run.create.concurrency_key`).
--
-- A run's key is `tenant:<tenant>` or, with a `concurrency_key`,
-- `tenant:<tenant>:<concurrency_key>`. A limit is set on a key or a key
-- pattern (`*` matches any characters; the most specific pattern wins:
-- the exact key, else the longest pattern) and applies to each matching
-- key on its own: at most `max_running` of its runs executing at once
-- across the fleet (a live claim admitted under the limit), at most `rate_per_second` command starts
-- per second (a token bucket holding at most a tenth of a second's worth,
-- and at least one). A command whose turn comes while its key is at a
-- limit is answered `limited` by runfleet_begin_command: the worker stores
-- its bytes in `limited_commands` and acknowledges it (no delivery, slot
-- or ack-pending place is spent on waiting), and the releaser publishes it
-- again when its key has room (runfleet_release_limited).

-- A run's key, from its tenant and its `run.create` message. (Computed
-- where needed rather than stored: a stored column is recomputed on every
-- update of `runs`, and an index on it or on the lease columns would end
-- HOT updates on the hot path. The runs of limited keys that were admitted
-- are tracked in concurrency_running instead.)
CREATE FUNCTION runfleet_run_key(p_tenant text, p_spec jsonb)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'tenant:' || p_tenant || coalesce(':' || (p_spec ->> 'concurrency_key'), '')
$$;

-- Runs of a limited key admitted to start; counted while their claim is
-- live, removed once it is not.
CREATE TABLE concurrency_running (
    key    text NOT NULL,
    tenant text NOT NULL,
    run_id text NOT NULL,
    PRIMARY KEY (key, tenant, run_id)
);

CREATE TABLE concurrency_limits (
    pattern         text PRIMARY KEY,
    like_pattern    text NOT NULL GENERATED ALWAYS AS (
        replace(replace(replace(replace(pattern, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')
    ) STORED,
    max_running     integer CHECK (max_running >= 1),
    rate_per_second double precision CHECK (rate_per_second > 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (max_running IS NOT NULL OR rate_per_second IS NOT NULL)
);

-- A rate-limited key's token bucket.
CREATE TABLE concurrency_keys (
    key         text PRIMARY KEY,
    tokens      double precision NOT NULL,
    refilled_at timestamptz NOT NULL
);

-- Commands whose turn came while their key was at a limit.
CREATE TABLE limited_commands (
    tenant           text        NOT NULL,
    run_id           text        NOT NULL,
    command_id       text        NOT NULL,
    seq              bigint      NOT NULL,
    key              text        NOT NULL,
    -- The `command.create` message, the bytes as delivered.
    message          bytea       NOT NULL,
    first_limited_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    limited_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Set when the releaser published it again; cleared if it is limited again.
    released_at      timestamptz,
    PRIMARY KEY (tenant, run_id, command_id)
);
CREATE INDEX limited_commands_by_key ON limited_commands (key, first_limited_at);

-- The limit of a key: the exact pattern, else the longest matching one.
CREATE FUNCTION runfleet_limit_of(p_key text)
RETURNS TABLE (pattern text, max_running integer, rate_per_second double precision)
LANGUAGE sql STABLE AS $$
    SELECT l.pattern, l.max_running, l.rate_per_second
      FROM concurrency_limits l
     WHERE p_key LIKE l.like_pattern
     ORDER BY (l.pattern = p_key) DESC, length(l.pattern) DESC, l.pattern
     LIMIT 1
$$;

-- The admitted runs of a key executing now (a live claim), other than
-- p_run_id's.
CREATE FUNCTION runfleet_key_running(p_key text, p_tenant text, p_run_id text)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM concurrency_running cr
      JOIN runs r ON r.tenant = cr.tenant AND r.run_id = cr.run_id
     WHERE cr.key = p_key AND r.lease_holder IS NOT NULL
       AND r.lease_expires_at > clock_timestamp()
       AND NOT (cr.tenant IS NOT DISTINCT FROM p_tenant AND cr.run_id IS NOT DISTINCT FROM p_run_id)
$$;

-- The tokens a key's bucket holds now (its burst when it has none yet).
CREATE FUNCTION runfleet_key_tokens(p_key text, p_rate double precision)
RETURNS double precision LANGUAGE sql STABLE AS $$
    SELECT least(greatest(1, p_rate / 10),
                 coalesce(k.tokens + extract(epoch FROM clock_timestamp() - k.refilled_at) * p_rate,
                          'Infinity'))
      FROM (SELECT 1) one LEFT JOIN concurrency_keys k ON k.key = p_key
$$;

-- Whether a command of p_key may start now; if so, its start is counted
-- (a token taken) and its limited row, if any, removed. Admissions of one
-- key are serialized by a transaction-level advisory lock on it, only
-- ever *tried*: a batch that finds it held answers `limited` instead of
-- waiting, so batches that lock runs in run order and keys in another
-- order cannot deadlock (the command waits a release round instead).
CREATE FUNCTION runfleet_limit_admit(
    p_key text, p_tenant text, p_run_id text, p_command_id text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    lim record;
    v_tokens double precision;
BEGIN
    SELECT * INTO lim FROM runfleet_limit_of(p_key);
    IF NOT FOUND THEN
        -- No limit (any more): it starts, and waits no longer.
        DELETE FROM limited_commands w
         WHERE w.tenant = p_tenant AND w.run_id = p_run_id AND w.command_id = p_command_id;
        RETURN true;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('runfleet_limit:' || p_key)) THEN
        RETURN false;
    END IF;
    INSERT INTO concurrency_keys (key, tokens, refilled_at)
    VALUES (p_key, greatest(1, coalesce(lim.rate_per_second, 10) / 10), clock_timestamp())
    ON CONFLICT DO NOTHING;
    IF lim.max_running IS NOT NULL THEN
        -- Admitted runs whose claim has ended no longer count.
        DELETE FROM concurrency_running cr USING runs r
         WHERE cr.key = p_key AND r.tenant = cr.tenant AND r.run_id = cr.run_id
           AND (r.lease_holder IS NULL OR r.lease_expires_at <= clock_timestamp());
        IF runfleet_key_running(p_key, p_tenant, p_run_id) >= lim.max_running THEN
            RETURN false;
        END IF;
    END IF;
    IF lim.rate_per_second IS NOT NULL THEN
        v_tokens := runfleet_key_tokens(p_key, lim.rate_per_second);
        IF v_tokens < 1 THEN
            RETURN false;
        END IF;
        UPDATE concurrency_keys SET tokens = v_tokens - 1, refilled_at = clock_timestamp()
         WHERE key = p_key;
    END IF;
    IF lim.max_running IS NOT NULL THEN
        INSERT INTO concurrency_running (key, tenant, run_id) VALUES (p_key, p_tenant, p_run_id)
        ON CONFLICT DO NOTHING;
    END IF;
    DELETE FROM limited_commands w
     WHERE w.tenant = p_tenant AND w.run_id = p_run_id AND w.command_id = p_command_id;
    RETURN true;
END $$;

-- Limited commands to publish again now, at most p_limit: per key, as many
-- as its limits have room for, counting those published in the last few
-- seconds and not started yet; the oldest first. A key without a limit any
-- more releases all. One releaser at a time across the fleet (the others
-- get nothing this round).
CREATE FUNCTION runfleet_release_limited(p_limit integer)
RETURNS TABLE (tenant text, run_id text, command_id text, message bytea,
               limited_at timestamptz, first_seen timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    k record;
    lim record;
    v_room bigint;
    v_transit bigint;
    v_left bigint := p_limit;
BEGIN
    -- Nothing waits (the usual case): nothing to lock or plan against
    -- `commands`.
    IF NOT EXISTS (SELECT 1 FROM limited_commands) THEN
        RETURN;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('runfleet_release_limited')) THEN
        RETURN;
    END IF;
    -- Released ones that ended without starting (cancelled, or their run
    -- ended: a receipt, a final status) wait no longer. (A start removes
    -- its own row; a command found `running` is one whose worker died,
    -- limited on its redelivery: it still waits.)
    DELETE FROM limited_commands w
     WHERE w.released_at IS NOT NULL
       AND (SELECT c.status FROM commands c
             WHERE c.tenant = w.tenant AND c.run_id = w.run_id AND c.command_id = w.command_id
             LIMIT 1) IN ('completed', 'failed', 'cancelled', 'timed-out');
    FOR k IN SELECT DISTINCT w.key FROM limited_commands w LOOP
        EXIT WHEN v_left <= 0;
        SELECT count(*) INTO v_transit FROM limited_commands w
         WHERE w.key = k.key AND w.released_at > clock_timestamp() - interval '5 seconds';
        v_room := v_left;
        SELECT * INTO lim FROM runfleet_limit_of(k.key);
        IF FOUND THEN
            IF lim.max_running IS NOT NULL THEN
                v_room := least(v_room,
                    lim.max_running - runfleet_key_running(k.key, NULL, NULL) - v_transit);
            END IF;
            IF lim.rate_per_second IS NOT NULL THEN
                -- What the bucket holds, and what it gains in the next
                -- tenth of a second (the publish's way to a worker), in
                -- whole starts: none before the next token is nearly due.
                v_room := least(v_room,
                    floor(runfleet_key_tokens(k.key, lim.rate_per_second)
                          + lim.rate_per_second / 10)::bigint - v_transit);
            END IF;
        END IF;
        CONTINUE WHEN v_room <= 0;
        RETURN QUERY
        WITH picked AS (
            SELECT w.tenant, w.run_id, w.command_id FROM limited_commands w
             WHERE w.key = k.key
               AND (w.released_at IS NULL
                    OR w.released_at <= clock_timestamp() - interval '5 seconds')
             ORDER BY w.first_limited_at
             LIMIT v_room
        )
        UPDATE limited_commands w SET released_at = clock_timestamp()
          FROM picked p, commands c
         WHERE w.tenant = p.tenant AND w.run_id = p.run_id AND w.command_id = p.command_id
           AND c.tenant = w.tenant AND c.run_id = w.run_id AND c.command_id = w.command_id
        RETURNING w.tenant, w.run_id, w.command_id, w.message, w.limited_at, c.created_at;
        GET DIAGNOSTICS v_transit = ROW_COUNT;
        v_left := v_left - v_transit;
    END LOOP;
END $$;

-- Records (or records again) a command limited on its key.
CREATE FUNCTION runfleet_limit_command(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_key text, p_message bytea)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO limited_commands (tenant, run_id, command_id, seq, key, message)
    VALUES (p_tenant, p_run_id, p_command_id, p_seq, p_key, p_message)
    ON CONFLICT (tenant, run_id, command_id) DO UPDATE
       SET limited_at = clock_timestamp(), released_at = NULL, message = EXCLUDED.message
$$;

-- ---------------------------------------------------------------------------
-- runfleet_begin_command (v10): as v5, and a claim is admitted by its key's
-- limits, else answered `limited` (detail: the key).
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION runfleet_begin_command(
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
    v_limited boolean := false;
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
           r.next_event_seq, r.failure_kind, r.status_reason, r.spec, r.spent,
           runfleet_run_key(r.tenant, r.spec) AS concurrency_key
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
    -- Its turn: within its key's limits, or it waits (`limited`).
    IF claim THEN
        v_limited := NOT runfleet_limit_admit(run.concurrency_key, p_tenant, p_run_id, p_command_id);
        claim := NOT v_limited;
    END IF;

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
    IF v_limited THEN
        RETURN QUERY SELECT 'limited', NULL::bigint, NULL::bigint, NULL::jsonb,
            run.concurrency_key, NULL::text, NULL::jsonb, NULL::jsonb, NULL::integer;
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

-- ---------------------------------------------------------------------------
-- runfleet_settle_pure (v10): as v3, and a run whose key has a limit is
-- left to the two-step path (`slow`), where the limit is applied.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION runfleet_settle_pure(
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
           (r.spec ? 'resource_bundle' OR r.spec ? 'budgets'
            OR EXISTS (SELECT 1 FROM concurrency_limits l
                        WHERE runfleet_run_key(r.tenant, r.spec) LIKE l.like_pattern)) AS needs_claim
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

-- runfleet_parked_due (v10): as v8, and a command parked behind a limited
-- earlier seq of its run does not expire either.
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
                                   AND d.seq < c.seq)
                AND NOT EXISTS (SELECT 1 FROM limited_commands w
                                 WHERE w.tenant = c.tenant AND w.run_id = c.run_id
                                   AND w.seq < c.seq))
            OR r.status IN ('completed', 'failed', 'blocked', 'cancelled')
            OR EXISTS (SELECT 1 FROM cancel_requests cr
                        WHERE cr.tenant = c.tenant AND cr.run_id = c.run_id
                          AND cr.command_id = c.command_id))
     ORDER BY c.parked_at
     LIMIT p_limit
$$;
