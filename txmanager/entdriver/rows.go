package entdriver

import (
	"database/sql"
	"database/sql/driver"
	"slices"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/jackc/pgx/v5"
)

// Rows adapts pgx.Rows to ent's entgo.io/ent/dialect/sql.ColumnScanner, the shape of
// database/sql's *sql.Rows that ent scans from. Scan accepts what pgx accepts, which
// covers what ent's generated code scans into: sql.Null* values, *any, *[]byte (JSON),
// *time.Time, and any sql.Scanner (uuid.UUID, for one).
type Rows struct {
	rows pgx.Rows
}

var _ entsql.ColumnScanner = (*Rows)(nil)

// Close closes the rows, releasing the connection if the query ran on the pool, and
// returns the error, if any, that ended the result set.
func (r *Rows) Close() error {
	r.rows.Close()
	return r.rows.Err()
}

// ColumnTypes returns [ErrColumnTypes]: pgx rows cannot produce *sql.ColumnType.
func (r *Rows) ColumnTypes() ([]*sql.ColumnType, error) {
	return nil, ErrColumnTypes
}

// Columns returns the names of the result's columns.
func (r *Rows) Columns() ([]string, error) {
	fields := r.rows.FieldDescriptions()
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return names, nil
}

// Err returns the error, if any, met while iterating.
func (r *Rows) Err() error { return r.rows.Err() }

// Next advances to the next row; it returns false after the last row or on error.
func (r *Rows) Next() bool { return r.rows.Next() }

// NextResultSet returns false: a pgx query has a single result set.
func (r *Rows) NextResultSet() bool { return false }

// Scan copies the current row's columns into dest. Besides what pgx scans into, it
// accepts *driver.Value, which ent uses for values it scans generically (ids the
// database generates that are neither numbers nor sql.Scanners, the ids of an update
// that spans tables, sql.ScanValue) and which pgx does not recognize as *any.
func (r *Rows) Scan(dest ...any) error {
	i := slices.IndexFunc(dest, isDriverValue)
	if i < 0 {
		return r.rows.Scan(dest...)
	}
	scan := slices.Clone(dest)
	values := make([]any, len(dest))
	for ; i < len(dest); i++ {
		if isDriverValue(dest[i]) {
			scan[i] = &values[i]
		}
	}
	if err := r.rows.Scan(scan...); err != nil {
		return err
	}
	for i, d := range dest {
		if v, ok := d.(*driver.Value); ok {
			*v = values[i]
		}
	}
	return nil
}

func isDriverValue(dest any) bool {
	_, ok := dest.(*driver.Value)
	return ok
}
