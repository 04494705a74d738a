DROP TRIGGER api_keys_record_event ON api_keys;
--bun:split
DROP FUNCTION record_api_key_event();
--bun:split
DROP TRIGGER sandboxes_record_event ON sandboxes;
--bun:split
DROP FUNCTION record_sandbox_event();
--bun:split
DROP TABLE events;
--bun:split
ALTER TABLE api_keys DROP COLUMN changed_by, DROP COLUMN change_request_id;
--bun:split
ALTER TABLE sandboxes DROP COLUMN changed_by, DROP COLUMN change_request_id;
