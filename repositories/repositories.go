// Package repositories owns the SQL. Each repository takes a bun.IDB so a caller can pass a
// transaction, and translates driver errors into the sentinels below at this boundary.
package repositories

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"

	"github.com/insien/orchestrator/internal/platform/actor"
	"github.com/insien/orchestrator/internal/platform/page"
)

// Sentinel errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// translate maps driver errors to the sentinels.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return errors.Join(ErrConflict, err)
	}
	return err
}

// The columns that name who made a row's latest change (sandboxes, api_keys): the event log's
// triggers read them into the event the change causes. Every statement that changes what an event
// reports sets them from the request's actor (the system's outside a request).
const (
	changedByColumn       = "changed_by"
	changeRequestIDColumn = "change_request_id"
)

// stampUpdate sets the change's actor on an UPDATE.
func stampUpdate(ctx context.Context, q *bun.UpdateQuery) *bun.UpdateQuery {
	a := actor.From(ctx)
	return q.Set("? = ?", bun.Ident(changedByColumn), a.Name()).Set("? = ?", bun.Ident(changeRequestIDColumn), a.RequestID)
}

// stampInsert sets the change's actor on an INSERT.
func stampInsert(ctx context.Context, q *bun.InsertQuery) *bun.InsertQuery {
	a := actor.From(ctx)
	return q.Value(changedByColumn, "?", a.Name()).Value(changeRequestIDColumn, "?", a.RequestID)
}

// inTx runs fn with a repository that bind puts on a transaction of db, committed when fn
// returns nil and rolled back otherwise. fn's error is returned as it is; a failure of the
// transaction itself (begin, commit) is wrapped as what.
func inTx[R any](ctx context.Context, db bun.IDB, bind func(bun.IDB) R, what string, fn func(context.Context, R) error) error {
	var fnErr error
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		fnErr = fn(ctx, bind(tx))
		return fnErr
	})
	if err != nil && fnErr == nil {
		return fmt.Errorf("%s: %w", what, translate(err))
	}
	return err
}

// deleteBatch deletes up to limit rows of table that match where (with args), skipping rows
// another transaction holds, and says how many went: a retention sweep calls it until fewer come
// back, so no statement locks a huge set and replicas sweeping at once take different rows.
func deleteBatch(ctx context.Context, db bun.IDB, step, table, where string, limit int, args ...any) (int, error) {
	res, err := db.NewRaw("DELETE FROM ? WHERE id IN (SELECT id FROM ? WHERE "+where+" LIMIT ? FOR UPDATE SKIP LOCKED)",
		append(append([]any{bun.Ident(table), bun.Ident(table)}, args...), limit)...).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", step, translate(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// newestFirst makes q one page of a list, newest first: limit rows created before the row after
// names (its created_at and id: a keyset, so a page never skips or repeats a row as rows come and
// go), or from the newest when after is nil.
func newestFirst(q *bun.SelectQuery, after *page.Cursor, limit int) *bun.SelectQuery {
	if after != nil {
		q = q.Where("(created_at, id) < (?, ?)", after.At, after.ID)
	}
	return q.OrderExpr("created_at DESC, id DESC").Limit(int64(limit))
}
