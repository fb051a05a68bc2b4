package sqldriver

import (
	"database/sql/driver"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// rows turns pgx rows into driver.Rows, decoding each column into the database/sql
// value pgx's stdlib package gives it: bool, []byte, int64, float64, time.Time, or
// the text of any other type.
type rows struct {
	rows   pgx.Rows
	names  []string
	decode []func(src []byte) (driver.Value, error)
}

func newRows(rs pgx.Rows) *rows { return &rows{rows: rs} }

// Columns returns the column names.
func (r *rows) Columns() []string {
	if r.names == nil {
		fds := r.rows.FieldDescriptions()
		r.names = make([]string, len(fds))
		for i, fd := range fds {
			r.names[i] = fd.Name
		}
	}
	return r.names
}

// Close closes the rows, which frees the transaction or releases the pooled
// connection.
func (r *rows) Close() error {
	r.rows.Close()
	return r.rows.Err()
}

// Next decodes the next row into dest; io.EOF when there is none.
func (r *rows) Next(dest []driver.Value) error {
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	if r.decode == nil {
		r.plan()
	}
	for i, raw := range r.rows.RawValues() {
		if raw == nil {
			dest[i] = nil
			continue
		}
		v, err := r.decode[i](raw)
		if err != nil {
			return fmt.Errorf("sqldriver: decode column %q: %w", r.Columns()[i], err)
		}
		dest[i] = v
	}
	return nil
}

// plan prepares one decoder per column.
func (r *rows) plan() {
	m := typeMap(r.rows)
	fds := r.rows.FieldDescriptions()
	r.decode = make([]func([]byte) (driver.Value, error), len(fds))
	for i, fd := range fds {
		switch fd.DataTypeOID {
		case pgtype.BoolOID:
			r.decode[i] = decoder(m, fd, func(v bool) (driver.Value, error) { return v, nil })
		case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
			r.decode[i] = decoder(m, fd, func(v []byte) (driver.Value, error) { return v, nil })
		case pgtype.Int2OID:
			r.decode[i] = decoder(m, fd, func(v int16) (driver.Value, error) { return int64(v), nil })
		case pgtype.Int4OID:
			r.decode[i] = decoder(m, fd, func(v int32) (driver.Value, error) { return int64(v), nil })
		case pgtype.Int8OID:
			r.decode[i] = decoder(m, fd, func(v int64) (driver.Value, error) { return v, nil })
		case pgtype.Float4OID:
			r.decode[i] = decoder(m, fd, func(v float32) (driver.Value, error) { return float64(v), nil })
		case pgtype.Float8OID:
			r.decode[i] = decoder(m, fd, func(v float64) (driver.Value, error) { return v, nil })
		case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
			r.decode[i] = decoder(m, fd, func(v pgtype.Uint32) (driver.Value, error) { return v.Value() })
		case pgtype.DateOID:
			r.decode[i] = decoder(m, fd, func(v pgtype.Date) (driver.Value, error) { return v.Value() })
		case pgtype.TimestampOID:
			r.decode[i] = decoder(m, fd, func(v pgtype.Timestamp) (driver.Value, error) { return v.Value() })
		case pgtype.TimestamptzOID:
			r.decode[i] = decoder(m, fd, func(v pgtype.Timestamptz) (driver.Value, error) { return v.Value() })
		default:
			r.decode[i] = textDecoder(m, fd)
		}
	}
}

// decoder scans a column into a T and converts it.
func decoder[T any](m *pgtype.Map, fd pgconn.FieldDescription, conv func(T) (driver.Value, error)) func([]byte) (driver.Value, error) {
	var d T
	plan := m.PlanScan(fd.DataTypeOID, fd.Format, &d)
	return func(src []byte) (driver.Value, error) {
		var v T
		if err := plan.Scan(src, &v); err != nil {
			return nil, err
		}
		return conv(v)
	}
}

// textDecoder returns a column's value in PostgreSQL's text format, which database/sql
// scans into strings and sql.Scanner implementations parse: as sent, or decoded from
// binary and encoded as text.
func textDecoder(m *pgtype.Map, fd pgconn.FieldDescription) func([]byte) (driver.Value, error) {
	if fd.Format == pgtype.TextFormatCode {
		return func(src []byte) (driver.Value, error) { return string(src), nil }
	}
	return func(src []byte) (driver.Value, error) {
		var v any
		if err := m.Scan(fd.DataTypeOID, fd.Format, src, &v); err != nil {
			return nil, err
		}
		text, err := m.Encode(fd.DataTypeOID, pgtype.TextFormatCode, v, nil)
		if err != nil {
			return nil, err
		}
		return string(text), nil
	}
}

// typeMap returns the type map rs decodes with.
func typeMap(rs pgx.Rows) *pgtype.Map {
	if tm, ok := rs.(interface{ TypeMap() *pgtype.Map }); ok && tm.TypeMap() != nil {
		return tm.TypeMap()
	}
	if c := rs.Conn(); c != nil {
		return c.TypeMap()
	}
	return pgtype.NewMap()
}
