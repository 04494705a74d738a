ALTER TABLE sandboxes DROP COLUMN IF EXISTS preview_generation;
