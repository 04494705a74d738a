-- A create served by a warm pool inserts its sandbox running (its member runs already): such an
-- insert records sandbox.created and then sandbox.running, as a create that starts pending and
-- is then marked running does, so that the event log and webhooks read the same for both.
-- record_sandbox_event_row writes one event of a sandbox row, which can now be two per change.
CREATE FUNCTION record_sandbox_event_row(s sandboxes, event_type text, status text, previous text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO events (user_id, type, sandbox_id, actor, request_id, data)
    VALUES (s.user_id, event_type, s.id, s.changed_by, s.change_request_id,
        jsonb_build_object('sandbox_id', s.id, 'status', status, 'previous_status', previous,
            'image', s.image, 'end_reason', s.end_reason, 'exit_code', s.exit_code,
            'metadata', s.metadata));
$$;
--bun:split
CREATE OR REPLACE FUNCTION record_sandbox_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_type text;
    previous   text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_sandbox_event_row(NEW, 'sandbox.created', 'pending', NULL);
        IF NEW.status = 'pending' THEN
            RETURN NULL;
        END IF;
        previous := 'pending';
    ELSE
        previous := OLD.status;
    END IF;
    event_type := CASE NEW.status
        WHEN 'running' THEN CASE previous WHEN 'paused' THEN 'sandbox.resumed' ELSE 'sandbox.running' END
        WHEN 'paused' THEN 'sandbox.paused'
        WHEN 'stopped' THEN 'sandbox.stopped'
        WHEN 'expired' THEN 'sandbox.expired'
        WHEN 'failed' THEN 'sandbox.failed'
    END; -- stopping is on the way to one of those: no event of its own
    IF event_type IS NOT NULL THEN
        PERFORM record_sandbox_event_row(NEW, event_type, NEW.status, previous);
    END IF;
    RETURN NULL;
END $$;
