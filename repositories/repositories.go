// Package repositories owns the SQL. Each repository takes a bun.IDB so a caller can pass a
// transaction, and translates driver errors into the sentinels below at this boundary.
package repositories

import (
	"context"
	"database/sql"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"

	"github.com/insien/orchestrator/internal/platform/actor"
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
