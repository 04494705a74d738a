-- A sandbox's disk limit in MiB (the engine's per-container storage size, or the Pod's
-- ephemeral-storage limit); NULL: none (a runtime that cannot enforce one).
ALTER TABLE sandboxes ADD COLUMN disk_mb bigint;
--bun:split
-- A warm pool member's, so that only a create asking for the same limit claims it (a running
-- container's storage size cannot change).
ALTER TABLE pool_members ADD COLUMN disk_mb bigint;
