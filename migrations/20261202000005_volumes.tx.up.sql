-- Persistent volumes: an ext4 image per volume on the engine's host, owned by one user.
CREATE TABLE volumes (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       text NOT NULL,
    size_mb    integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, name)
);
--bun:split
-- The volumes a sandbox mounts: [{"volume_id": ..., "path": ..., "read_only": ...}]. A volume is in
-- use while a live sandbox lists it.
ALTER TABLE sandboxes ADD COLUMN volumes jsonb NOT NULL DEFAULT '[]';
