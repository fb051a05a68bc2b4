package txmanager

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// hook is a commit or rollback callback.
type hook = func(ctx context.Context) error

// stagedItem is one item given to Stage.
type stagedItem struct {
	w    CommitWriter
	item any
}

// openResult is the rows or batch results of the transaction that are still open.
type openResult interface {
	closeLocked() error
}

// txState is one transaction: its connection (acquired with the first statement), the
// control statements still to send, its scopes, hooks and staged items. Only the goroutine
// that runs it uses it; mu turns any concurrent use into ErrTxBusy instead of a data race.
type txState struct {
	mu   sync.Mutex
	done atomic.Bool // set under mu when the transaction has ended

	m        *Manager
	conn     *pgxpool.Conn
	beginSQL string
	iso      pgx.TxIsoLevel
	readOnly bool // begun READ ONLY
	name     string
	// joinAsNested turns scopes that would join the root scope into savepoint scopes
	// (JoinAsNested).
	joinAsNested bool

	begun     bool  // BEGIN was executed
	broken    error // the transaction cannot go on (BEGIN or ROLLBACK TO failed)
	failErr   error // the first statement error since the last good ROLLBACK TO
	retryable bool  // a statement or COMMIT failed with 40001 or 40P01
	// connLost: the connection broke while COMMIT had surely not committed (before it
	// was sent, or the server reported the transaction rolled back): retryable.
	connLost bool
	xid      int64                   // the transaction's id, once a statement learnt it (0: unknown)
	xidEra   time.Time               // when the server that gave xid started (pg_postmaster_start_time)
	xidFn    func(row pgx.Row) error // records xid; see xidQuery

	open openResult // rows or batch results that keep the connection busy

	pend          []pending // control statements to send with the next statement
	scopes        []*scope  // the open scopes, root first
	commitHooks   []hook
	rollbackHooks []hook
	staged        []stagedItem

	// Reused to send the pending prefix with a statement.
	batch pgx.Batch
	qq    []pgx.QueuedQuery

	root     scope
	pendBuf  [4]pending
	scopeBuf [4]*scope
	qqBuf    [4]pgx.QueuedQuery // BEGIN or RELEASE+SAVEPOINT, a statement, the id query
	qqPtrBuf [4]*pgx.QueuedQuery
}

// newState returns a transaction that begins with o's BEGIN; ctx is the context of its
// root scope.
func (m *Manager) newState(ctx context.Context, o *options) *txState {
	st := &txState{m: m, beginSQL: o.beginSQL(), iso: o.iso, readOnly: o.readOnly, name: o.name, joinAsNested: o.joinAsNested}
	st.root.Context = ctx
	st.root.st = st
	st.scopes = append(st.scopeBuf[:0], &st.root)
	st.pend = append(st.pendBuf[:0], pending{sql: st.beginSQL, kind: pendBegin})
	st.qq = st.qqBuf[:0]
	st.batch.QueuedQueries = st.qqPtrBuf[:0]
	return st
}

// lock takes the state for an operation of sc on the caller's goroutine.
func (st *txState) lock(sc *scope) error {
	if !st.mu.TryLock() {
		return ErrTxBusy
	}
	if st.done.Load() || sc.closed {
		st.mu.Unlock()
		return ErrTxDone
	}
	return nil
}

// enter is lock for an operation that needs the connection: it also fails while rows or
// batch results are open.
func (st *txState) enter(sc *scope) error {
	if err := st.lock(sc); err != nil {
		return err
	}
	if st.open != nil {
		st.mu.Unlock()
		return ErrTxBusy
	}
	return nil
}

// top returns the innermost open scope.
func (st *txState) top() *scope { return st.scopes[len(st.scopes)-1] }

// connect acquires the connection on the first statement.
func (st *txState) connect(ctx context.Context) error {
	if st.broken != nil {
		return st.broken
	}
	if st.conn != nil {
		return nil
	}
	c, err := st.m.acquire(ctx, st)
	if err != nil {
		return err
	}
	st.conn = c
	return nil
}

// noteErr records a statement error: the first one explains a COMMIT that rolled back,
// and a serialization failure, a deadlock or a connection that broke before COMMIT make
// the transaction retryable.
func (st *txState) noteErr(err error) {
	if st.conn != nil && st.conn.Conn().IsClosed() &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		st.connLost = true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return
	}
	if st.failErr == nil {
		st.failErr = err
	}
	if pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected {
		st.retryable = true
	}
}

// closeOpen closes rows or batch results left open, so that the connection can be used.
func (st *txState) closeOpen() error {
	if st.open == nil {
		return nil
	}
	return st.open.closeLocked()
}
