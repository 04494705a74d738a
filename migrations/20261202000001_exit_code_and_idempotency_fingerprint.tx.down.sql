ALTER TABLE sandboxes
    DROP COLUMN IF EXISTS exit_code,
    DROP COLUMN IF EXISTS idempotency_fingerprint;
