-- A sandbox's egress policy ({"egress": "none" | "allow" | "all", "allow": [...], "deny": [...]}):
-- every replica enforcing it reads it from here, so it survives their restarts.
ALTER TABLE sandboxes ADD COLUMN network jsonb NOT NULL DEFAULT '{"egress": "none"}';
