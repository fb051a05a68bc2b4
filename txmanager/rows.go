package txmanager

import (
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// txRows are the rows of a statement of a transaction; while open they keep the
// transaction busy.
type txRows struct {
	st     *txState
	rows   pgx.Rows         // nil when the statement failed before running
	br     pgx.BatchResults // the batch the rows came in, closed with them
	err    error
	closed bool
	// remember is the statement to remember as known once the rows close without error.
	remember string
}

var _ pgx.Rows = (*txRows)(nil)

// Close closes the rows and frees the transaction for the next statement.
func (r *txRows) Close() {
	if r.closed {
		return
	}
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	_ = r.closeLocked()
}

func (r *txRows) closeLocked() error {
	if r.closed {
		return r.err
	}
	r.closed = true
	r.rows.Close()
	err := r.rows.Err()
	if r.br != nil {
		if cerr := r.br.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		r.err = err
		r.st.noteErr(err)
	} else if r.remember != "" {
		r.st.m.remember(r.remember, nil)
	}
	if r.st.open == openResult(r) {
		r.st.open = nil
	}
	return err
}

// Err returns the error of the statement or of reading its rows.
func (r *txRows) Err() error {
	if r.err != nil {
		return r.err
	}
	if r.rows != nil {
		return r.rows.Err()
	}
	return nil
}

// CommandTag returns the statement's command tag, once the rows are closed.
func (r *txRows) CommandTag() pgconn.CommandTag {
	if r.rows == nil {
		return pgconn.CommandTag{}
	}
	return r.rows.CommandTag()
}

// FieldDescriptions describes the columns.
func (r *txRows) FieldDescriptions() []pgconn.FieldDescription {
	if r.rows == nil {
		return nil
	}
	return r.rows.FieldDescriptions()
}

// Next moves to the next row; when there is none it closes the rows and returns false.
func (r *txRows) Next() bool {
	if r.closed {
		return false
	}
	if r.rows.Next() {
		return true
	}
	r.Close()
	return false
}

// Scan reads the current row into dest; on error the rows are closed.
func (r *txRows) Scan(dest ...any) error {
	if r.rows == nil {
		return r.err
	}
	err := r.rows.Scan(dest...)
	if err != nil {
		r.Close()
	}
	return err
}

// Values returns the current row's values.
func (r *txRows) Values() ([]any, error) {
	if r.rows == nil {
		return nil, r.err
	}
	return r.rows.Values()
}

// RawValues returns the current row's raw bytes, valid until the next call to Next.
func (r *txRows) RawValues() [][]byte {
	if r.rows == nil {
		return nil
	}
	return r.rows.RawValues()
}

// Conn returns the transaction's connection (nil when the statement failed early).
func (r *txRows) Conn() *pgx.Conn {
	if r.rows == nil {
		return nil
	}
	return r.rows.Conn()
}

// txRow is the row of QueryRow.
type txRow txRows

var _ pgx.Row = (*txRow)(nil)

// Scan reads the first row into dest and closes the rows; pgx.ErrNoRows when there is
// none.
func (r *txRow) Scan(dest ...any) error {
	rows := (*txRows)(r)
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	for _, d := range dest {
		if _, ok := d.(*pgtype.DriverBytes); ok {
			rows.Close()
			return errors.New("txmanager: cannot scan into *pgtype.DriverBytes from QueryRow")
		}
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	_ = rows.Scan(dest...)
	rows.Close()
	return rows.Err()
}

// TypeMap returns the map the values are decoded with (nil when the statement failed
// early).
func (r *txRows) TypeMap() *pgtype.Map {
	if r.rows == nil {
		return nil
	}
	return r.rows.TypeMap()
}
