-- Bumped to revoke every preview URL of a sandbox at once: a URL carries the generation it was
-- issued under and opens nothing once the sandbox's has moved on.
ALTER TABLE sandboxes ADD COLUMN preview_generation integer NOT NULL DEFAULT 0;
--bun:split
-- Ports whose preview host opens without a token.
ALTER TABLE sandboxes ADD COLUMN public_ports integer[] NOT NULL DEFAULT '{}';
