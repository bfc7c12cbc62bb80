-- V9: recurring runs. A schedule is stored here (the truth) and its timing
-- handed to a JetStream message schedule on RUNFLEET_TIMERS
-- (`runfleet.sched.<tenant>.<schedule_id>`, firing on `runfleet.fire.…`).
-- Each firing is decided here once: `run` (start a run for the occurrence)
-- or `skip` (late, by the catch-up policy); a redelivered firing gets the
-- same answer, so a run is started once per occurrence.

CREATE TABLE schedules (
    tenant          text        NOT NULL,
    schedule_id     text        NOT NULL,
    spec            text        NOT NULL,   -- the Nats-Schedule value
    project         text        NOT NULL,
    profile         text        NOT NULL,
    payload         jsonb       NOT NULL,
    priority        text        NOT NULL,
    catch_up        text        NOT NULL CHECK (catch_up IN ('skip', 'once')),
    paused          boolean     NOT NULL DEFAULT false,
    runs_started    bigint      NOT NULL DEFAULT 0,
    last_occurrence timestamptz,            -- the latest occurrence decided
    last_decision   text,                   -- and what was decided for it
    on_time_at      timestamptz,            -- the latest occurrence taken on time
    caught_up_for   timestamptz,            -- the on_time_at a catch-up run followed
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, schedule_id)
);

-- One firing of a schedule: `run`, `skip`, or `gone` (deleted or paused).
CREATE FUNCTION runfleet_schedule_fired(
    p_tenant text, p_schedule_id text, p_occurrence timestamptz, p_late boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s record;
    decision text;
BEGIN
    SELECT * INTO s FROM schedules
     WHERE tenant = p_tenant AND schedule_id = p_schedule_id FOR UPDATE;
    IF NOT FOUND OR s.paused THEN
        RETURN 'gone';
    END IF;
    IF s.last_occurrence = p_occurrence THEN
        RETURN s.last_decision;              -- a redelivered firing
    END IF;
    IF s.last_occurrence > p_occurrence THEN
        RETURN 'skip';                       -- older than one already decided
    END IF;
    IF NOT p_late THEN
        decision := 'run';
        UPDATE schedules SET on_time_at = p_occurrence
         WHERE tenant = p_tenant AND schedule_id = p_schedule_id;
    ELSIF s.catch_up = 'once'
          AND s.caught_up_for IS DISTINCT FROM coalesce(s.on_time_at, '-infinity') THEN
        decision := 'run';
        UPDATE schedules SET caught_up_for = coalesce(s.on_time_at, '-infinity')
         WHERE tenant = p_tenant AND schedule_id = p_schedule_id;
    ELSE
        decision := 'skip';
    END IF;
    UPDATE schedules
       SET last_occurrence = p_occurrence, last_decision = decision,
           runs_started = runs_started + (decision = 'run')::int
     WHERE tenant = p_tenant AND schedule_id = p_schedule_id;
    RETURN decision;
END $$;
