-- Templates: images built from a user's Dockerfile, or snapshots of a sandbox, private to the user.
CREATE TABLE templates (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         text NOT NULL,
    source       text NOT NULL,             -- dockerfile | snapshot
    status       text NOT NULL,             -- building | ready | failed
    image        text NOT NULL,             -- the engine's tag (several templates may share one: a cached build)
    context_hash text NOT NULL DEFAULT '',  -- SHA-256 of the Dockerfile and files, for the build cache
    error        text,
    failed_step  text,
    build_log    text NOT NULL DEFAULT '',
    size_bytes   bigint NOT NULL DEFAULT 0,
    instance     text NOT NULL,             -- the replica building it
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    UNIQUE (user_id, name)
);
--bun:split
CREATE INDEX templates_cache ON templates (user_id, context_hash) WHERE status = 'ready';
