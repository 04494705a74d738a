ALTER TABLE sandboxes DROP COLUMN IF EXISTS start;
--bun:split
DROP TABLE IF EXISTS pool_failures;
--bun:split
DROP TABLE IF EXISTS pool_members;
