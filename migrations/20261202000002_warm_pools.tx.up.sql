-- Warm pools: sandboxes started ahead of demand. A member's id becomes the id of the sandbox that
-- claims it (its container is named after it from the start), and the claim moves it from this
-- table to sandboxes in one transaction, so no member is handed out twice or lost between the two.
CREATE TABLE pool_members (
    id         uuid PRIMARY KEY,
    image      text NOT NULL,
    cpu        double precision NOT NULL,
    memory_mb  bigint NOT NULL,
    -- starting: its container is being created (by instance); ready: it runs and may be claimed.
    status     text NOT NULL DEFAULT 'starting' CHECK (status IN ('starting', 'ready')),
    runtime_id text,
    instance   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    ready_at   timestamptz
);
--bun:split
-- A claim takes the oldest ready member of an image.
CREATE INDEX pool_members_ready_idx ON pool_members (image, ready_at) WHERE status = 'ready';
--bun:split
-- Why a pool could not fill, for `orchestrator pool status`; cleared once it fills again.
CREATE TABLE pool_failures (
    image     text PRIMARY KEY,
    message   text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
--bun:split
-- How a sandbox started: cold (its own container was created for it) or warm (it claimed a member).
ALTER TABLE sandboxes ADD COLUMN start text NOT NULL DEFAULT 'cold' CHECK (start IN ('cold', 'warm'));
