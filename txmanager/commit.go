package txmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// end finishes the transaction and runs its hooks with a context derived from base (the
// context the transaction was begun with) that carries no transaction.
func (st *txState) end(opCtx, base context.Context, fnErr error) error {
	err, committed, hooks := st.finish(opCtx, fnErr)
	if len(hooks) > 0 {
		kind := "rollback"
		if committed {
			kind = "commit"
		}
		st.m.runHooks(hookContext(base), st.name, hooks, kind)
	}
	return err
}

// finish ends the transaction: it commits when fnErr is nil and nothing prevents it,
// else rolls back; then it returns the connection to the pool. It returns the
// transaction's error, whether it committed, and the hooks to run. opCtx is the context
// of COMMIT.
func (st *txState) finish(opCtx context.Context, fnErr error) (err error, committed bool, hooks []hook) {
	st.mu.Lock()
	defer func() {
		if st.conn != nil {
			// Foreign code (a callback of rows or a batch left open, or of a commit
			// writer) panicked: the connection's state is unknown, so it is closed, which
			// also rolls the transaction back on the server.
			st.destroyConn(opCtx)
		}
		st.root.closed = true
		st.done.Store(true)
		st.mu.Unlock()
	}()
	if st.done.Load() {
		return ErrTxDone, false, nil
	}
	if cerr := st.closeOpen(); cerr != nil && fnErr == nil {
		fnErr = cerr
	}
	if len(st.scopes) > 1 {
		for _, sc := range st.scopes[1:] {
			sc.closed = true
		}
		if fnErr == nil {
			fnErr = errors.New("txmanager: the transaction ended while scopes opened inside it were still open: end (Commit or Rollback) every Tx from Begin, innermost first")
		}
	}
	if fnErr == nil && st.root.rollbackOnly {
		fnErr = fmt.Errorf("%w: %w", ErrRollbackOnly, st.root.cause)
	}
	if fnErr == nil && st.broken != nil {
		fnErr = st.broken
	}
	if fnErr == nil {
		if cerr := st.root.Err(); cerr != nil {
			fnErr = fmt.Errorf("txmanager: the transaction's context ended before it committed, rolled back: %w", context.Cause(&st.root))
		}
	}
	if fnErr == nil {
		var unknown bool
		fnErr, unknown = st.commit(opCtx)
		switch {
		case unknown:
			committed, fnErr = st.lostCommit(opCtx, fnErr)
			if errors.Is(fnErr, ErrCommitOutcomeUnknown) {
				// Neither kind of hook runs: the transaction may have gone either way.
				return fnErr, false, nil
			}
		case fnErr == nil:
			committed = true
		}
	}
	if !committed {
		if rbErr := st.rollback(opCtx); rbErr != nil {
			fnErr = fmt.Errorf("%w (and the rollback failed, the connection was closed: %w)", fnErr, rbErr)
		}
	}
	if st.conn != nil {
		st.conn.Release()
		st.conn = nil
	}
	if committed {
		return nil, true, st.commitHooks
	}
	return fnErr, false, st.rollbackHooks
}

// commit sends COMMIT, with the staged items' statements when there are some, and
// checks that it committed. When the round trip failed after COMMIT may have reached
// the server, unknown is set and err is the failure as pgx reported it.
func (st *txState) commit(ctx context.Context) (err error, unknown bool) {
	if len(st.staged) > 0 {
		return st.commitBatch(ctx)
	}
	if !st.begun {
		// Nothing was ever sent: there is nothing to commit.
		return nil, false
	}
	// Pending RELEASEs are dropped: COMMIT releases every savepoint.
	st.pend = st.pend[:0]
	if err := st.connBrokenBeforeCommit(); err != nil {
		return err, false
	}
	tag, err := st.conn.Exec(ctx, "commit")
	if err != nil {
		return st.commitFailed(err, true)
	}
	return st.checkCommitTag(tag), false
}

// connBrokenBeforeCommit returns the error of a transaction whose connection is already
// closed when COMMIT is about to be sent: it surely rolled back, and may be retried.
func (st *txState) connBrokenBeforeCommit() error {
	if !st.conn.Conn().IsClosed() {
		return nil
	}
	st.connLost = true
	return errors.New("txmanager: commit: the connection was closed before COMMIT could be sent, rolled back")
}

// commitFailed returns the error of a COMMIT round trip that failed with err, and
// whether the outcome is unknown; atCommit as for classifyCommitFailure.
func (st *txState) commitFailed(err error, atCommit bool) (error, bool) {
	if classifyCommitFailure(err, atCommit) == outcomeUnknown {
		return err, true
	}
	st.noteErr(err)
	return fmt.Errorf("txmanager: commit: %w", err), false
}

// checkCommitTag turns a COMMIT answered with ROLLBACK (the transaction was aborted by
// an error someone ignored) into an error.
func (st *txState) checkCommitTag(tag pgconn.CommandTag) error {
	if tag.String() != "ROLLBACK" {
		return nil
	}
	cause := st.failErr
	if cause == nil {
		cause = pgx.ErrTxCommitRollback
	}
	return fmt.Errorf("txmanager: COMMIT rolled back: a statement of the transaction failed and its error was ignored: %w", cause)
}

// commitBatch sends [BEGIN] + the writers' statements + COMMIT in one round trip.
func (st *txState) commitBatch(ctx context.Context) (error, bool) {
	if err := st.connect(ctx); err != nil {
		return err, false
	}
	st.pend = st.pend[:0]
	b := &pgx.Batch{}
	nPrefix := 0
	if !st.begun {
		b.Queue(st.beginSQL)
		nPrefix = 1
	}
	// Writers in the order of their first item, each with its items in order.
	var wbuf [4]CommitWriter
	writers := wbuf[:0]
	for _, s := range st.staged {
		if !slices.Contains(writers, s.w) {
			writers = append(writers, s.w)
		}
	}
	itemsOf := func(w CommitWriter) []any {
		var items []any
		for _, s := range st.staged {
			if s.w == w {
				items = append(items, s.item)
			}
		}
		return items
	}
	for _, w := range writers {
		if err := w.QueueCommit(ctx, b, itemsOf(w)); err != nil {
			return fmt.Errorf("txmanager: a commit writer failed to queue its statements, rolled back: %w", err), false
		}
	}
	nWriter := len(b.QueuedQueries) - nPrefix
	b.Queue("commit")
	for _, w := range writers {
		if aw, ok := w.(AfterCommitQueuer); ok {
			if err := aw.QueueAfterCommit(ctx, b, itemsOf(w)); err != nil {
				return fmt.Errorf("txmanager: a commit writer failed to queue its statements after COMMIT, rolled back: %w", err), false
			}
		}
	}
	if err := st.connBrokenBeforeCommit(); err != nil {
		return err, false
	}

	br := st.conn.SendBatch(ctx, b)
	var err error
	for range nPrefix {
		if _, err = br.Exec(); err != nil {
			break
		}
		st.begun = true
	}
	var cbErr error // a writer's result callback failed; the server went on
	if err == nil {
		for _, qq := range b.QueuedQueries[nPrefix : nPrefix+nWriter] {
			if qq.Fn != nil {
				if ferr := qq.Fn(br); ferr != nil {
					var pgErr *pgconn.PgError
					if errors.As(ferr, &pgErr) {
						err = ferr
						break
					}
					if cbErr == nil {
						cbErr = ferr
					}
				}
			} else if _, err = br.Exec(); err != nil {
				break
			}
		}
	}
	if err != nil {
		_ = br.Close()
		return st.commitFailed(err, false)
	}
	tag, err := br.Exec()
	if err != nil {
		_ = br.Close()
		return st.commitFailed(err, true)
	}
	// COMMIT's answer was read: what Close reports now cannot change the outcome.
	if cerr := br.Close(); cerr != nil && cbErr == nil {
		cbErr = cerr
	}
	if err := st.checkCommitTag(tag); err != nil {
		return err, false
	}
	if cbErr != nil {
		st.m.logger.LogAttrs(ctx, slog.LevelError, "txmanager: a commit writer's result callback failed after COMMIT succeeded; the transaction is committed",
			attrTx(st.name), attrErr(cbErr))
	}
	return nil, false
}
