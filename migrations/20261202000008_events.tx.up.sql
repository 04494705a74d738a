-- Who made a row's latest change, for the event it causes: a principal's name ("key:<id>",
-- "user:<id>") or "system" (the reaper, the event watcher, the reconciler), and the request id.
ALTER TABLE sandboxes ADD COLUMN changed_by text NOT NULL DEFAULT 'system',
    ADD COLUMN change_request_id text NOT NULL DEFAULT '';
--bun:split
ALTER TABLE api_keys ADD COLUMN changed_by text NOT NULL DEFAULT 'system',
    ADD COLUMN change_request_id text NOT NULL DEFAULT '';
--bun:split
-- The event log: what happened to a user's sandboxes and keys. Rows are written by the triggers
-- below, inside the statement that makes the change, so an event exists exactly when its change
-- was committed, whichever code path made it (a request, the reaper, the event watcher, the
-- reconciler), and costs no round trip.
CREATE TABLE events (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       text NOT NULL,
    sandbox_id uuid,
    api_key_id uuid,
    actor      text NOT NULL,
    request_id text NOT NULL DEFAULT '',
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
--bun:split
CREATE INDEX events_user_created_idx ON events (user_id, created_at DESC, id DESC);
--bun:split
CREATE INDEX events_created_idx ON events (created_at);
--bun:split
CREATE FUNCTION record_sandbox_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_type text;
    previous   text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        event_type := 'sandbox.created';
    ELSE
        previous := OLD.status;
        event_type := CASE NEW.status
            WHEN 'running' THEN CASE OLD.status WHEN 'paused' THEN 'sandbox.resumed' ELSE 'sandbox.running' END
            WHEN 'paused' THEN 'sandbox.paused'
            WHEN 'stopped' THEN 'sandbox.stopped'
            WHEN 'expired' THEN 'sandbox.expired'
            WHEN 'failed' THEN 'sandbox.failed'
        END; -- stopping is on the way to one of those: no event of its own
    END IF;
    IF event_type IS NOT NULL THEN
        INSERT INTO events (user_id, type, sandbox_id, actor, request_id, data)
        VALUES (NEW.user_id, event_type, NEW.id, NEW.changed_by, NEW.change_request_id,
            jsonb_build_object('sandbox_id', NEW.id, 'status', NEW.status, 'previous_status', previous,
                'image', NEW.image, 'end_reason', NEW.end_reason, 'exit_code', NEW.exit_code,
                'metadata', NEW.metadata));
    END IF;
    RETURN NULL;
END $$;
--bun:split
CREATE TRIGGER sandboxes_record_event AFTER INSERT OR UPDATE OF status ON sandboxes
    FOR EACH ROW EXECUTE FUNCTION record_sandbox_event();
--bun:split
CREATE FUNCTION record_api_key_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_type text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        event_type := 'api_key.created';
    ELSIF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
        event_type := 'api_key.revoked';
    END IF;
    IF event_type IS NOT NULL THEN
        INSERT INTO events (user_id, type, api_key_id, actor, request_id, data)
        VALUES (NEW.user_id, event_type, NEW.id, NEW.changed_by, NEW.change_request_id,
            jsonb_build_object('api_key_id', NEW.id, 'name', NEW.name, 'prefix', NEW.prefix,
                'last_four', NEW.last_four, 'scopes', to_jsonb(NEW.scopes)));
    END IF;
    RETURN NULL;
END $$;
--bun:split
CREATE TRIGGER api_keys_record_event AFTER INSERT OR UPDATE OF revoked_at ON api_keys
    FOR EACH ROW EXECUTE FUNCTION record_api_key_event();
