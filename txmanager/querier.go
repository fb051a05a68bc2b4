package txmanager

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// The scope is the Querier of its transaction: every statement runs on the transaction's
// connection, after the control statements still pending, which travel in the same round
// trip. Without pending statements, a statement goes straight to the connection.

// Exec runs sql in the transaction.
func (s *scope) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	st := s.st
	if err := st.enter(s); err != nil {
		return pgconn.CommandTag{}, err
	}
	defer st.mu.Unlock()
	rt, err := st.route(ctx, sql, nil)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if rt != routePrefixed {
		tag, err := st.conn.Exec(ctx, sql, args...)
		if err != nil {
			st.noteErr(err)
		} else if rt == routeFlushed {
			st.m.remember(sql, nil)
		}
		return tag, err
	}
	br, err := st.sendPrefixed(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		st.noteErr(err)
	}
	return tag, err
}

// Query runs sql in the transaction. The transaction is busy until the rows are closed
// (Next returning false closes them).
func (s *scope) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r := s.query(ctx, sql, args)
	return r, r.err
}

// QueryRow runs sql in the transaction; Scan reads the first row and closes the rows.
func (s *scope) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return (*txRow)(s.query(ctx, sql, args))
}

func (s *scope) query(ctx context.Context, sql string, args []any) *txRows {
	st := s.st
	if err := st.enter(s); err != nil {
		return &txRows{st: st, err: err, closed: true}
	}
	defer st.mu.Unlock()
	rt, err := st.route(ctx, sql, nil)
	if err != nil {
		return &txRows{st: st, err: err, closed: true}
	}
	r := &txRows{st: st}
	if rt != routePrefixed {
		r.rows, err = st.conn.Query(ctx, sql, args...)
		if rt == routeFlushed {
			r.remember = sql
		}
	} else {
		r.br, err = st.sendPrefixed(ctx, sql, args)
		if err == nil {
			r.rows, err = r.br.Query()
		}
	}
	if err != nil {
		r.closed = true
		r.err = err
		if r.rows != nil {
			r.rows.Close()
		}
		if r.br != nil {
			_ = r.br.Close()
		}
		st.noteErr(err)
		return r
	}
	st.open = r
	return r
}

// SendBatch sends b in the transaction, after the pending control statements. The
// transaction is busy until the results are closed.
func (s *scope) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	st := s.st
	if err := st.enter(s); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	defer st.mu.Unlock()
	rt, err := st.route(ctx, "", b)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	r := &txBatch{st: st}
	if rt != routePrefixed {
		r.br = st.conn.SendBatch(ctx, b)
		if rt == routeFlushed {
			r.remember = b
		}
	} else {
		full := st.prefixBatch("", nil, false)
		// The caller's queued queries keep their callbacks; they run on the results after
		// the prefix's, which are read here.
		full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
		r.br = st.conn.SendBatch(ctx, full)
		if err := st.readPrefix(r.br); err != nil {
			_ = r.br.Close()
			return pgx.FailedBatchResults(b, err)
		}
	}
	st.open = r
	return r
}

// CopyFrom copies rows into the table in the transaction. Pending control statements are
// sent first, in a round trip of their own: COPY cannot share it.
func (s *scope) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	st := s.st
	if err := st.enter(s); err != nil {
		return 0, err
	}
	defer st.mu.Unlock()
	if err := st.connect(ctx); err != nil {
		return 0, err
	}
	if len(st.pend) > 0 {
		if err := st.flushPrefix(ctx); err != nil {
			return 0, err
		}
	}
	n, err := st.conn.CopyFrom(ctx, tableName, columnNames, rowSrc)
	if err != nil {
		st.noteErr(err)
	}
	return n, err
}

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

// txBatch are the results of a batch sent in a transaction; while open they keep the
// transaction busy.
type txBatch struct {
	st       *txState
	br       pgx.BatchResults
	err      error
	closed   bool
	remember *pgx.Batch // statements to remember as known once closed without error
}

var _ pgx.BatchResults = (*txBatch)(nil)

var errBatchClosed = errors.New("txmanager: batch results already closed")

// Exec reads the next statement's result.
func (b *txBatch) Exec() (pgconn.CommandTag, error) {
	if b.closed {
		return pgconn.CommandTag{}, errBatchClosed
	}
	return b.br.Exec()
}

// Query reads the next statement's rows; close them before reading on.
func (b *txBatch) Query() (pgx.Rows, error) {
	if b.closed {
		return &txRows{st: b.st, err: errBatchClosed, closed: true}, errBatchClosed
	}
	return b.br.Query()
}

// QueryRow reads the next statement's row.
func (b *txBatch) QueryRow() pgx.Row {
	return b.br.QueryRow()
}

// Close reads the remaining results (running their callbacks) and frees the
// transaction for the next statement.
func (b *txBatch) Close() error {
	if b.closed {
		return b.err
	}
	b.st.mu.Lock()
	defer b.st.mu.Unlock() // the results' callbacks run in closeLocked
	return b.closeLocked()
}

func (b *txBatch) closeLocked() error {
	if b.closed {
		return b.err
	}
	b.closed = true
	b.err = b.br.Close()
	if b.err != nil {
		b.st.noteErr(b.err)
	} else if b.remember != nil {
		b.st.m.remember("", b.remember)
	}
	if b.st.open == openResult(b) {
		b.st.open = nil
	}
	return b.err
}

// Tx returns nil: the transaction belongs to the Manager.
func (b *txBatch) Tx() pgx.Tx { return nil }

// TypeMap returns the map the values are decoded with (nil when the statement failed
// early).
func (r *txRows) TypeMap() *pgtype.Map {
	if r.rows == nil {
		return nil
	}
	return r.rows.TypeMap()
}
