package txmanager

import (
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SQLOptions returns the options of the scope a database/sql-shaped BeginTx opens: a
// Nested scope (a savepoint inside a transaction, else a new transaction) with
// opts' isolation level and read-only mode, which apply when a transaction begins.
// sql.LevelSnapshot is PostgreSQL's REPEATABLE READ; levels PostgreSQL lacks are an
// error. Used by the ent and database/sql drivers (packages entdriver and sqldriver).
func SQLOptions(opts *sql.TxOptions) ([]Option, error) {
	out := []Option{Nested()}
	if opts == nil {
		return out, nil
	}
	switch opts.Isolation {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		out = append(out, WithIsolation(pgx.ReadUncommitted))
	case sql.LevelReadCommitted:
		out = append(out, WithIsolation(pgx.ReadCommitted))
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		out = append(out, WithIsolation(pgx.RepeatableRead))
	case sql.LevelSerializable:
		out = append(out, WithIsolation(pgx.Serializable))
	default:
		return nil, fmt.Errorf("txmanager: isolation level %s is not supported by PostgreSQL; use read committed, repeatable read or serializable", opts.Isolation)
	}
	if opts.ReadOnly {
		out = append(out, ReadOnly())
	}
	return out, nil
}
