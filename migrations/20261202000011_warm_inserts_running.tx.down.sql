-- The function as migration 000008 made it: one event per change, an insert always pending.
CREATE OR REPLACE FUNCTION record_sandbox_event() RETURNS trigger LANGUAGE plpgsql AS $$
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
DROP FUNCTION record_sandbox_event_row(sandboxes, text, text, text);
