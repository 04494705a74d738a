-- lock_sandbox_owner locks a live user for a sandbox create and counts the user's live sandboxes
-- (model.Live; the statuses of sandboxes_live_user_idx) in one round trip: a burst of one user's
-- creates queues on this lock, so each round trip it holds is paid once per create in the queue.
-- It is VOLATILE, so its count runs with a snapshot taken after the lock is granted and sees the
-- sandboxes of the transaction that held it before; one SELECT ... FOR NO KEY UPDATE with the
-- count as a subquery would count with the snapshot taken before it waited. NULL: no such user,
-- or deleted. FOR NO KEY UPDATE leaves the foreign-key checks of inserts referencing the user
-- unblocked.
CREATE FUNCTION lock_sandbox_owner(owner uuid) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM users WHERE id = owner AND deleted_at IS NULL FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT count(*) FROM sandboxes
            WHERE user_id = owner AND status IN ('pending', 'running', 'paused', 'stopping'));
END
$$;
