ALTER TABLE pool_members DROP COLUMN disk_mb;
--bun:split
ALTER TABLE sandboxes DROP COLUMN disk_mb;
