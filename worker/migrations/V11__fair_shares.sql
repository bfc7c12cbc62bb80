-- V11: fairness between tenants.
--
-- The work stream is first in, first out: a tenant with a large backlog
-- would hold every slot of the fleet until it is through, and a tenant
-- that publishes a little work after it would wait that long. So while
-- more than one tenant has work waiting, a tenant whose backlog (its
-- messages in the work stream plus its commands waiting here) is at least
-- a share (runfleet_fair_divert's p_share) is *diverted*: a command of it
-- whose turn comes is not started but answered `limited`, like a command
-- over a concurrency limit, and waits in `limited_commands`, its message
-- acknowledged. That moves the large backlog out of the stream's way, so
-- the fleet reaches the other tenants' work at once. (A worker that knows
-- the tenant is diverted sets a command of it aside as it arrives, before
-- any other journal work, under the key `tenant:<tenant>`; a command that
-- reaches runfleet_begin_command is diverted there.) The releaser
-- publishes a diverted tenant's commands again a window at a time
-- (p_fair_window of runfleet_release_limited), and a released copy is not
-- diverted again. Once no other tenant has had work waiting for
-- p_linger_ms, nobody is diverted and the waiting are released at full
-- speed. One worker at a time (runfleet_fair_turn) measures the backlogs,
-- about once a second.

-- The tenants diverted now.
CREATE TABLE fair_tenants (
    tenant  text PRIMARY KEY,
    -- Its backlog when last measured.
    backlog bigint      NOT NULL,
    since   timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The one row saying who measured last, and when more than one tenant
-- last had work waiting.
CREATE TABLE fair_watch (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    watched_at   timestamptz NOT NULL,
    watcher      text,
    contended_at timestamptz,
    -- When fair_tenants was last decided: a set older than a few seconds
    -- (its measuring fails, or no worker measures any more) diverts nobody.
    measured_at  timestamptz
);

-- Whether p_tenant is diverted now (by a set decided in the last 5 seconds).
CREATE FUNCTION runfleet_fair_diverted(p_tenant text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM fair_tenants f, fair_watch w
                    WHERE f.tenant = p_tenant
                      AND w.measured_at > clock_timestamp() - interval '5 seconds')
$$;

-- Released and not started yet: the partial index keeps the releaser's
-- counts off the waiting backlog.
CREATE INDEX limited_commands_released ON limited_commands (tenant, released_at)
 WHERE released_at IS NOT NULL;
INSERT INTO fair_watch (watched_at) VALUES ('-infinity');

-- Whether p_worker measures now: at most one worker every p_every_ms.
CREATE FUNCTION runfleet_fair_turn(p_worker text, p_every_ms bigint)
RETURNS boolean LANGUAGE sql AS $$
    WITH taken AS (
        UPDATE fair_watch SET watched_at = clock_timestamp(), watcher = p_worker
         WHERE watched_at <= clock_timestamp() - p_every_ms * interval '1 millisecond'
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM taken)
$$;

-- Decides which tenants are diverted, from each tenant's messages in the
-- work stream (p_tenants, p_messages) and its commands waiting in
-- `limited_commands`: while two tenants or more have work waiting (and
-- for p_linger_ms after), each whose backlog is at least p_share;
-- otherwise none. Returns the diverted tenants and their backlogs.
CREATE FUNCTION runfleet_fair_divert(
    p_tenants text[], p_messages bigint[], p_share bigint, p_linger_ms bigint)
RETURNS TABLE (tenant text, backlog bigint) LANGUAGE plpgsql AS $$
DECLARE
    v_tenants  text[];
    v_backlogs bigint[];
    v_contended_at timestamptz;
BEGIN
    SELECT array_agg(t.tenant), array_agg(t.n) INTO v_tenants, v_backlogs
      FROM (SELECT u.tenant, sum(u.n)::bigint AS n
              FROM (SELECT s.tenant, s.n FROM unnest(p_tenants, p_messages) AS s(tenant, n)
                    UNION ALL
                    SELECT w.tenant, count(*) FROM limited_commands w
                     WHERE w.released_at IS NULL GROUP BY w.tenant) u
             GROUP BY u.tenant
            HAVING sum(u.n) > 0) t;
    IF coalesce(cardinality(v_tenants), 0) >= 2 THEN
        UPDATE fair_watch SET contended_at = clock_timestamp(), measured_at = clock_timestamp()
        RETURNING contended_at INTO v_contended_at;
    ELSE
        UPDATE fair_watch SET measured_at = clock_timestamp()
        RETURNING contended_at INTO v_contended_at;
    END IF;
    IF v_contended_at IS NULL
       OR v_contended_at <= clock_timestamp() - p_linger_ms * interval '1 millisecond' THEN
        v_tenants := '{}';
        v_backlogs := '{}';
    END IF;
    DELETE FROM fair_tenants f
     WHERE NOT EXISTS (SELECT 1 FROM unnest(v_tenants, v_backlogs) AS b(tenant, n)
                        WHERE b.tenant = f.tenant AND b.n >= p_share);
    INSERT INTO fair_tenants AS f (tenant, backlog)
    SELECT b.tenant, b.n FROM unnest(v_tenants, v_backlogs) AS b(tenant, n)
     WHERE b.n >= p_share
    ON CONFLICT ON CONSTRAINT fair_tenants_pkey DO UPDATE SET backlog = EXCLUDED.backlog;
    RETURN QUERY SELECT f.tenant, f.backlog FROM fair_tenants f ORDER BY f.tenant;
END $$;

-- runfleet_limit_admit (v11): as v10, and a command of a diverted tenant
-- is not admitted unless it is a released copy.
CREATE OR REPLACE FUNCTION runfleet_limit_admit(
    p_key text, p_tenant text, p_run_id text, p_command_id text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    lim record;
    v_tokens double precision;
BEGIN
    IF runfleet_fair_diverted(p_tenant)
       AND NOT EXISTS (SELECT 1 FROM limited_commands w
                        WHERE w.tenant = p_tenant AND w.run_id = p_run_id
                          AND w.command_id = p_command_id AND w.released_at IS NOT NULL) THEN
        RETURN false;
    END IF;
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

-- runfleet_limit_command (v11): as v10, and a command limited again takes
-- the key it was limited on this time (one set aside as it arrived waits
-- under its tenant's key, then on its run's own key's limit).
CREATE OR REPLACE FUNCTION runfleet_limit_command(
    p_tenant text, p_run_id text, p_command_id text, p_seq bigint, p_key text, p_message bytea)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO limited_commands (tenant, run_id, command_id, seq, key, message)
    VALUES (p_tenant, p_run_id, p_command_id, p_seq, p_key, p_message)
    ON CONFLICT (tenant, run_id, command_id) DO UPDATE
       SET limited_at = clock_timestamp(), released_at = NULL, message = EXCLUDED.message,
           key = EXCLUDED.key
$$;

-- runfleet_release_limited (v11): as v10, and
-- * a tenant gets at most p_fair_window of its commands released and not
--   started yet (a copy not started within 30 seconds, 5 on a key with a
--   limit, is released again under the same `Nats-Msg-Id`), diverted or
--   not: a backlog set aside goes back to the stream a window at a time,
--   never all at once ahead of other tenants' work;
-- * only a command whose turn has come is released (its run's next seq,
--   or its run is unknown or over), copies released before last;
-- * rows locked elsewhere (a start deleting its row) are skipped, not
--   waited for;
-- * keys are served oldest waiting first.
-- A command a worker set aside as it arrived has no `commands` row yet:
-- it was first seen when it was set aside.
CREATE FUNCTION runfleet_release_limited(p_limit integer, p_fair_window integer)
RETURNS TABLE (tenant text, run_id text, command_id text, message bytea,
               limited_at timestamptz, first_seen timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    k record;
    lim record;
    v_room bigint;
    v_transit bigint;
    v_again interval;
    v_has_limit boolean;
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
     WHERE (w.tenant, w.run_id, w.command_id) IN (
            SELECT x.tenant, x.run_id, x.command_id FROM limited_commands x
             WHERE x.released_at IS NOT NULL
               AND (SELECT c.status FROM commands c
                     WHERE c.tenant = x.tenant AND c.run_id = x.run_id
                       AND c.command_id = x.command_id
                     LIMIT 1) IN ('completed', 'failed', 'cancelled', 'timed-out')
               FOR UPDATE SKIP LOCKED);
    FOR k IN SELECT w.key, min(w.tenant) AS tenant FROM limited_commands w
              GROUP BY w.key
              ORDER BY min(w.first_limited_at) LOOP
        EXIT WHEN v_left <= 0;
        SELECT * INTO lim FROM runfleet_limit_of(k.key);
        v_has_limit := FOUND;
        v_again := CASE WHEN v_has_limit THEN interval '5 seconds' ELSE interval '30 seconds' END;
        SELECT count(*) INTO v_transit FROM limited_commands w
         WHERE w.key = k.key AND w.released_at > clock_timestamp() - v_again;
        v_room := least(v_left, p_fair_window - (
            SELECT count(*) FROM limited_commands w
             WHERE w.tenant = k.tenant AND w.released_at > clock_timestamp() - interval '30 seconds'));
        IF v_has_limit THEN
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
               AND (w.released_at IS NULL OR w.released_at <= clock_timestamp() - v_again)
               AND NOT EXISTS (SELECT 1 FROM runs r
                                WHERE r.tenant = w.tenant AND r.run_id = w.run_id
                                  AND r.status NOT IN ('completed', 'failed', 'blocked', 'cancelled')
                                  AND w.seq > r.next_seq)
             ORDER BY (w.released_at IS NOT NULL), w.first_limited_at
             LIMIT v_room
             FOR UPDATE OF w SKIP LOCKED
        )
        UPDATE limited_commands w SET released_at = clock_timestamp()
          FROM picked p
         WHERE w.tenant = p.tenant AND w.run_id = p.run_id AND w.command_id = p.command_id
        RETURNING w.tenant, w.run_id, w.command_id, w.message, w.limited_at,
                  coalesce((SELECT c.created_at FROM commands c
                             WHERE c.tenant = w.tenant AND c.run_id = w.run_id
                               AND c.command_id = w.command_id), w.first_limited_at);
        GET DIAGNOSTICS v_transit = ROW_COUNT;
        v_left := v_left - v_transit;
    END LOOP;
END $$;

-- The v10 signature, for workers of the previous version during a rolling
-- upgrade: the default window.
CREATE OR REPLACE FUNCTION runfleet_release_limited(p_limit integer)
RETURNS TABLE (tenant text, run_id text, command_id text, message bytea,
               limited_at timestamptz, first_seen timestamptz)
LANGUAGE sql AS $$
    SELECT * FROM runfleet_release_limited(p_limit, 256)
$$;
