// Package repositories owns the SQL. Each repository takes a bun.IDB so a caller can pass a
// transaction, and translates driver errors into the sentinels below at this boundary.
package repositories

import (
	"database/sql"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
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
