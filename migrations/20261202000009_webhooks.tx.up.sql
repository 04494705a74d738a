-- Outbound webhooks: a user's endpoints, and the outbox of deliveries to them. The secret is
-- sealed by the service (envcrypt, bound to the endpoint's id): a database dump alone cannot sign.
CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url             text NOT NULL,
    events          text[] NOT NULL,
    description     text NOT NULL DEFAULT '',
    secret          bytea NOT NULL,
    disabled_at     timestamptz,
    disabled_reason text,
    failing_since   timestamptz, -- the first failed attempt since the last success
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
--bun:split
CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, created_at);
--bun:split
-- One row per event and endpoint: the outbox. event_id is the events row's id (or a test's own),
-- sent as webhook-id on every attempt, so a receiver dedupes retries and redeliveries by it.
-- payload is the Standard Webhooks body, copied at enqueue: the event log's retention cannot
-- lose a delivery's content. retry_from starts the give-up window (reset by a manual retry).
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    retry_from       timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_status_code integer,
    last_error       text,
    last_latency_ms  integer,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (endpoint_id, event_id)
);
--bun:split
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
--bun:split
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
--bun:split
CREATE TABLE webhook_attempts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL,
    status_code  integer,          -- null: no answer (refused address, timeout, connection error)
    latency_ms   integer NOT NULL,
    error        text              -- null: succeeded
);
--bun:split
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at);
--bun:split
-- The outbox is filled in the statement that writes the event, itself written in the statement
-- that makes the change: a change is committed with its deliveries or not at all.
CREATE FUNCTION enqueue_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, user_id, event_id, event_type, payload)
    SELECT e.id, NEW.user_id, NEW.id, NEW.type,
        jsonb_build_object('type', NEW.type,
            'timestamp', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            'data', NEW.data || jsonb_build_object('event_id', NEW.id, 'actor', NEW.actor,
                'request_id', NULLIF(NEW.request_id, '')))
    FROM webhook_endpoints e
    WHERE e.user_id = NEW.user_id AND e.disabled_at IS NULL AND NEW.type = ANY (e.events);
    RETURN NULL;
END $$;
--bun:split
CREATE TRIGGER events_enqueue_webhooks AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION enqueue_webhook_deliveries();
