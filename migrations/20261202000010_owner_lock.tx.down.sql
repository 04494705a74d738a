DROP FUNCTION lock_sandbox_owner(uuid);
