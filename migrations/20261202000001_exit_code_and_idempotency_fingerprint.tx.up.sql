-- How a sandbox's main process ended (end_reason process_exited or oom_killed), and the
-- fingerprint of the create request an Idempotency-Key was first used with: a retry with another
-- request under the same key is refused instead of answered with the first sandbox.
ALTER TABLE sandboxes
    ADD COLUMN exit_code               integer,
    ADD COLUMN idempotency_fingerprint bytea;
