ALTER TABLE sandboxes DROP COLUMN IF EXISTS volumes;
--bun:split
DROP TABLE IF EXISTS volumes;
