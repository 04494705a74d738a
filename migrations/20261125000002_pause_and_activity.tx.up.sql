-- Pause/resume and activity-based expiry.
ALTER TABLE sandboxes
    ADD COLUMN paused_at   timestamptz,
    ADD COLUMN auto_extend boolean NOT NULL DEFAULT true;
