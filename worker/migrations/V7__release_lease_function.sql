-- runfleet_release_lease: gives a claim up early (shutdown, a retry), so the
-- next delivery need not wait for the lease to expire. Only under the
-- claim's own fencing token: a superseded worker releases nothing of its
-- successor's. True when the lease was released.
CREATE FUNCTION runfleet_release_lease(p_tenant text, p_run_id text, p_fencing_token bigint)
RETURNS boolean LANGUAGE sql AS $$
    WITH released AS (
        UPDATE runs SET lease_holder = NULL, lease_expires_at = NULL
         WHERE tenant = p_tenant AND run_id = p_run_id AND fencing_token = p_fencing_token
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM released)
$$;
