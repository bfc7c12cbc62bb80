-- V15: signed cancels (`RUNFLEET_REQUIRE_SIGNED_CONTROL`).
--
-- control_signers: the public NKeys that may sign a tenant's cancels,
-- written by the operator API (`signer.add`, `signer.remove`) and read for
-- every signed cancel, so a removal holds from the next cancel on.
CREATE TABLE control_signers (
    tenant     text NOT NULL,
    public_key text NOT NULL,
    note       text,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, public_key)
);

-- control_signatures: signatures accepted in the last day, each with the
-- stored message (its stream sequence in RUNFLEET_CONTROL) it was accepted
-- for. The same signature on another stored message is a replay; on the
-- same one, a redelivery. A copy is refused as stale unless it was
-- published within 300 s of its signing, so every replay is published
-- within 10 minutes of the original; keeping a day of signatures covers a
-- backlog of up to a day before the copy is read. Older rows are removed
-- as new ones come.
CREATE TABLE control_signatures (
    signature       text PRIMARY KEY,
    stream_sequence bigint NOT NULL,
    accepted_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX control_signatures_by_age ON control_signatures (accepted_at);

-- Records an accepted signature for a stored message; returns the stream
-- sequence it was first accepted for (this one unless it is a replay;
-- NULL when a concurrent statement took it first: a replay too).
CREATE FUNCTION runfleet_accept_signature(p_signature text, p_stream_sequence bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_first bigint;
BEGIN
    DELETE FROM control_signatures WHERE accepted_at < now() - interval '1 day';
    INSERT INTO control_signatures (signature, stream_sequence)
    VALUES (p_signature, p_stream_sequence)
    ON CONFLICT (signature) DO NOTHING
    RETURNING stream_sequence INTO v_first;
    IF v_first IS NULL THEN
        SELECT stream_sequence INTO v_first FROM control_signatures WHERE signature = p_signature;
    END IF;
    RETURN v_first;
END
$$;
