-- How a sandbox's main process ended (end_reason process_exited or oom_killed), and the
-- fingerprint of the create request an Idempotency-Key was first used with: a retry with another
-- request under the same key is refused instead of answered with the first sandbox.
ALTER TABLE sandboxes
    ADD COLUMN exit_code               integer,
    ADD COLUMN idempotency_fingerprint bytea;
--bun:split
-- A failed start used to record the engine's error text (host paths, cgroups) as end_reason, which
-- the API returns: keep only the code. (Not undone by the down migration: the text is not wanted.)
UPDATE sandboxes SET end_reason = 'start_failed'
WHERE status = 'failed' AND end_reason IS NOT NULL
  AND end_reason NOT IN ('deleted', 'user_deleted', 'expired', 'create_interrupted', 'runtime_lost', 'process_exited');
