-- V12: live events.
--
-- Until now a command's events reached the journal (and the events stream)
-- only with its receipt, so a follower saw a long program's progress only
-- after it ended. Now the executing worker appends them as they come, in
-- small batches (about every 100 ms), under the claim's fencing token, and
-- publishes each batch once it is stored; the commit appends only the rest.
--
-- The worker numbers the events itself, from the run's next_event_seq as
-- its claim found it: while the claim's token is the run's, nobody else
-- appends to the run's log (runfleet_append_run_event waits for the lease
-- to end), so the numbers stay gap-free. Each event carries its attempt
-- (the delivery). An attempt that ends without a receipt (its worker
-- killed, its lease lost, a retryable failure) leaves its events in the
-- log; the next claim numbers on after them, and the receipt's events
-- range names the seqs of the attempt that counted.

-- ---------------------------------------------------------------------------
-- runfleet_append_events: part of a claimed command's events, appended
-- while it executes. p_events is a JSON array of event messages whose seqs
-- run on from the run's next_event_seq. 'appended'; or 'fenced' when the
-- claim was superseded (a newer fencing token) or the log moved on without
-- it: nothing is written then, so a stale worker adds nothing.
-- ---------------------------------------------------------------------------
CREATE FUNCTION runfleet_append_events(p_tenant text, p_run_id text, p_command_id text,
                                       p_token bigint, p_events jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE runs r
       SET next_event_seq = r.next_event_seq + jsonb_array_length(p_events)
     WHERE r.tenant = p_tenant AND r.run_id = p_run_id AND r.fencing_token = p_token
       AND r.next_event_seq = (p_events -> 0 ->> 'seq')::bigint;
    IF NOT FOUND THEN
        RETURN 'fenced';
    END IF;
    INSERT INTO events (tenant, run_id, seq, command_id, event, at)
    SELECT p_tenant, p_run_id, (e ->> 'seq')::bigint, p_command_id, e, (e ->> 'at')::timestamptz
      FROM jsonb_array_elements(p_events) AS e;
    RETURN 'appended';
END $$;
