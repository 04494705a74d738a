-- Users: one row per person, from Clerk (clerk_user_id) or created locally by an operator.
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_user_id text UNIQUE,
    email         text NOT NULL DEFAULT '',
    first_name    text NOT NULL DEFAULT '',
    last_name     text NOT NULL DEFAULT '',
    username      text NOT NULL DEFAULT '',
    image_url     text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    profile_synced_at timestamptz, -- last successful profile fetch from Clerk
    last_seen_at  timestamptz,
    deleted_at    timestamptz
);
--bun:split
-- Operator-created users are found by email.
CREATE UNIQUE INDEX users_local_email_idx ON users (lower(email))
    WHERE clerk_user_id IS NULL AND deleted_at IS NULL;
--bun:split
-- API keys: only a SHA-256 digest of the secret is stored.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL,
    secret_hash  bytea NOT NULL UNIQUE,
    last_four    text NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz
);
--bun:split
CREATE INDEX api_keys_user_created_idx ON api_keys (user_id, created_at DESC);
--bun:split
-- Sandboxes: the durable record of every sandbox; the runtime holds the container.
CREATE TABLE sandboxes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    api_key_id      uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    idempotency_key text,
    image           text NOT NULL,
    command         text[] NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'paused', 'stopping', 'stopped', 'failed', 'expired')),
    end_reason      text,
    runtime_id      text,
    instance        text NOT NULL DEFAULT '',
    cpu             double precision NOT NULL,
    memory_mb       bigint NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}',
    env_names       text[] NOT NULL DEFAULT '{}',
    env_encrypted   bytea,
    timeout_seconds integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    expires_at      timestamptz NOT NULL,
    ended_at        timestamptz
);
--bun:split
-- Listing newest first with a (created_at, id) cursor.
CREATE INDEX sandboxes_user_created_idx ON sandboxes (user_id, created_at DESC, id DESC);
--bun:split
-- Quota counts and reconciliation look only at live sandboxes.
CREATE INDEX sandboxes_live_user_idx ON sandboxes (user_id)
    WHERE status IN ('pending', 'running', 'paused', 'stopping');
--bun:split
-- The reaper scans live sandboxes by expiry.
CREATE INDEX sandboxes_live_expiry_idx ON sandboxes (expires_at)
    WHERE status IN ('pending', 'running', 'paused');
--bun:split
-- A retried create with the same Idempotency-Key finds the first sandbox.
CREATE UNIQUE INDEX sandboxes_idempotency_idx ON sandboxes (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
--bun:split
-- metadata[key]=value filters.
CREATE INDEX sandboxes_metadata_idx ON sandboxes USING gin (metadata jsonb_path_ops);
