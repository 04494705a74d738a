ALTER TABLE sandboxes DROP COLUMN IF EXISTS public_ports;
--bun:split
ALTER TABLE sandboxes DROP COLUMN IF EXISTS preview_generation;
