-- V13: the indexes `runs.list` pages by (the operator API and the web
-- console list runs newest first, filtered, with keyset pagination).
--
-- Only columns a run never changes are indexed (created_at, tenant,
-- run_id, project, backend_profile), so every update of `runs` on the hot
-- path stays a HOT update. A filter on `status` walks one of these in
-- created_at order and stops once a page is full.
CREATE INDEX runs_newest ON runs (created_at DESC, tenant DESC, run_id DESC);
CREATE INDEX runs_newest_by_tenant ON runs (tenant, created_at DESC, run_id DESC);
CREATE INDEX runs_newest_by_project ON runs (tenant, project, created_at DESC, run_id DESC);
CREATE INDEX runs_newest_by_profile ON runs (backend_profile, created_at DESC, tenant DESC, run_id DESC);
CREATE INDEX runs_by_id_prefix ON runs (run_id text_pattern_ops);
