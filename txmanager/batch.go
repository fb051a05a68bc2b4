package txmanager

import (
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

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
