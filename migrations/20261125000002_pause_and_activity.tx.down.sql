ALTER TABLE sandboxes
    DROP COLUMN IF EXISTS paused_at,
    DROP COLUMN IF EXISTS auto_extend;
