DROP TRIGGER events_enqueue_webhooks ON events;
--bun:split
DROP FUNCTION enqueue_webhook_deliveries();
--bun:split
DROP TABLE webhook_attempts;
--bun:split
DROP TABLE webhook_deliveries;
--bun:split
DROP TABLE webhook_endpoints;
