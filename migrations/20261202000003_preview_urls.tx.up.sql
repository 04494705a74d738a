-- Bumped to revoke every preview URL of a sandbox at once: a URL carries the generation it was
-- issued under and opens nothing once the sandbox's has moved on.
ALTER TABLE sandboxes ADD COLUMN preview_generation integer NOT NULL DEFAULT 0;
