// Package page is the keyset pagination every list of the API shares: newest first, and a cursor
// that names the last row of a page by its creation time and id.
package page

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/apierror"
)

// Cursor is where the next page starts: after the row created at At with id ID.
type Cursor struct {
	At time.Time
	ID uuid.UUID
}

// Encode is the cursor a client passes back.
func (c Cursor) Encode() string { return fmt.Sprintf("%d_%s", c.At.UnixMicro(), c.ID) }

// Decode reads a cursor that Encode made.
func Decode(s string) (Cursor, error) {
	var micros int64
	var raw string
	if _, err := fmt.Sscanf(s, "%d_%s", &micros, &raw); err != nil {
		return Cursor{}, fmt.Errorf("reading a cursor: %w", err)
	}
	id, err := uuid.Parse(raw)
	if err != nil {
		return Cursor{}, fmt.Errorf("reading a cursor's id: %w", err)
	}
	return Cursor{At: time.UnixMicro(micros), ID: id}, nil
}

// MaxLimit is the largest page a client may ask for.
const MaxLimit = 100

// Request is a page a client asked for: Limit rows after After (nil: from the newest).
type Request struct {
	Limit int
	After *Cursor
}

// Parse checks a list's limit (1 to MaxLimit) and cursor: a 400 naming either when it is bad.
func Parse(limit int, cursor string) (Request, error) {
	if limit < 1 || limit > MaxLimit {
		return Request{}, apierror.Invalid("limit", "limit must be between 1 and %d", MaxLimit)
	}
	r := Request{Limit: limit}
	if cursor != "" {
		c, err := Decode(cursor)
		if err != nil {
			return Request{}, apierror.Invalid("cursor", "cursor is not one this API returned")
		}
		r.After = &c
	}
	return r, nil
}

// Fetch is how many rows to read: one more than the page tells whether a next page exists.
func (r Request) Fetch() int { return r.Limit + 1 }

// Cut trims rows read with Fetch to the page and returns the next page's cursor, "" when this is
// the last; cursor says where a row stands.
func Cut[T any](r Request, rows []T, cursor func(T) Cursor) ([]T, string) {
	if len(rows) <= r.Limit {
		return rows, ""
	}
	rows = rows[:r.Limit]
	return rows, cursor(rows[len(rows)-1]).Encode()
}
