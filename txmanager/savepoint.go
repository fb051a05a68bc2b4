package txmanager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// spState is where a savepoint scope's SAVEPOINT stands.
type spState uint8

const (
	spNone        spState = iota // the root scope: no savepoint
	spQueued                     // queued in the pending prefix, not sent yet
	spEstablished                // executed successfully
	spFailed                     // sent but failed or skipped: no savepoint exists
)

// Savepoint statements, precomputed for the usual depths; names are generated, never
// taken from user input.
var savepointSQLs, releaseSQLs, rollbackToSQLs = controlSQLs("savepoint uno_sp_"),
	controlSQLs("release savepoint uno_sp_"), controlSQLs("rollback to savepoint uno_sp_")

func controlSQLs(prefix string) (t [17]string) {
	for i := 1; i < len(t); i++ {
		t[i] = prefix + strconv.Itoa(i)
	}
	return t
}

func controlSQL(table *[17]string, prefix string, level int) string {
	if level < len(table) {
		return table[level]
	}
	return prefix + strconv.Itoa(level)
}

// pushSavepoint opens a savepoint scope inside the innermost scope and queues its
// SAVEPOINT; ctx is the context the scope derives from.
func (st *txState) pushSavepoint(ctx context.Context) *scope {
	level := st.top().level + 1
	sc := &scope{
		Context:      ctx,
		st:           st,
		level:        level,
		sp:           spQueued,
		commitMark:   len(st.commitHooks),
		rollbackMark: len(st.rollbackHooks),
		stageMark:    len(st.staged),
	}
	st.scopes = append(st.scopes, sc)
	st.pend = append(st.pend, pending{
		sql:   controlSQL(&savepointSQLs, "savepoint uno_sp_", level),
		kind:  pendSavepoint,
		level: int32(level),
		sc:    sc,
	})
	return sc
}

// dropQueued removes sc's SAVEPOINT, never sent, from the prefix together with what
// inner scopes queued after it.
func (st *txState) dropQueued(sc *scope) {
	for i := range st.pend {
		if st.pend[i].sc == sc {
			clear(st.pend[i:])
			st.pend = st.pend[:i]
			return
		}
	}
}

// popScope closes sc, the innermost scope.
func (st *txState) popScope(sc *scope) {
	sc.closed = true
	st.scopes[len(st.scopes)-1] = nil
	st.scopes = st.scopes[:len(st.scopes)-1]
}

// endSavepoint ends savepoint scope sc with fnErr (nil: success) and returns the scope's
// error and the rollback hooks to run. st.mu is held.
func (st *txState) endSavepoint(ctx context.Context, sc *scope, fnErr error) (error, []hook) {
	if st.top() != sc {
		return errors.New("txmanager: a scope ended before the scopes opened inside it: end (Commit or Rollback) the inner ones first"), nil
	}
	if fnErr == nil && sc.rollbackOnly {
		fnErr = fmt.Errorf("%w: %w", ErrRollbackOnly, sc.cause)
	}
	if fnErr == nil {
		switch sc.sp {
		case spQueued:
			// Nothing was sent for the scope: nothing to release.
			st.dropQueued(sc)
		case spEstablished:
			// RELEASE goes with the next statement; releasing sc also releases the
			// savepoints of inner scopes, so their pending RELEASEs are dropped. Before
			// COMMIT it is dropped too.
			st.pend = slices.DeleteFunc(st.pend, func(p pending) bool {
				return p.kind == pendRelease && int(p.level) > sc.level
			})
			st.pend = append(st.pend, pending{
				sql:   controlSQL(&releaseSQLs, "release savepoint uno_sp_", sc.level),
				kind:  pendRelease,
				level: int32(sc.level),
			})
		}
		// Hooks and staged items now belong to the parent scope.
		st.popScope(sc)
		return nil, nil
	}

	var rbErr error
	switch sc.sp {
	case spQueued:
		st.dropQueued(sc)
	case spEstablished:
		rbErr = st.rollbackTo(ctx, sc.level)
	}
	var hooks []hook
	if len(st.rollbackHooks) > sc.rollbackMark {
		hooks = slices.Clone(st.rollbackHooks[sc.rollbackMark:])
	}
	clear(st.commitHooks[sc.commitMark:])
	st.commitHooks = st.commitHooks[:sc.commitMark]
	clear(st.rollbackHooks[sc.rollbackMark:])
	st.rollbackHooks = st.rollbackHooks[:sc.rollbackMark]
	clear(st.staged[sc.stageMark:])
	st.staged = st.staged[:sc.stageMark]
	st.popScope(sc)
	if rbErr != nil {
		return fmt.Errorf("%w (and %w)", fnErr, rbErr), hooks
	}
	return fnErr, hooks
}

// rollbackTo rolls back to savepoint level now (one round trip) and queues its RELEASE.
func (st *txState) rollbackTo(ctx context.Context, level int) error {
	// Everything pending was queued by scopes inside this one, whose work is being
	// undone; sending it could even fail in an aborted transaction.
	clear(st.pend)
	st.pend = st.pend[:0]
	err := st.closeOpen()
	if err == nil {
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			ctx, cancel = st.m.cleanupContext(ctx)
			defer cancel()
		}
		_, err = st.conn.Exec(ctx, controlSQL(&rollbackToSQLs, "rollback to savepoint uno_sp_", level))
	}
	if err != nil {
		// The scope's writes may still be there: the transaction must not commit.
		st.broken = fmt.Errorf("txmanager: rolling back to a savepoint failed, the transaction cannot go on: %w", err)
		return st.broken
	}
	st.failErr = nil
	st.pend = append(st.pend, pending{
		sql:   controlSQL(&releaseSQLs, "release savepoint uno_sp_", level),
		kind:  pendRelease,
		level: int32(level),
	})
	return nil
}

// endScope ends savepoint scope sc and runs its rollback hooks with a context derived
// from base, the context the scope was opened with; opCtx is that of ROLLBACK TO.
func (st *txState) endScope(opCtx, base context.Context, sc *scope, fnErr error) error {
	err, hooks := st.endScopeLocked(opCtx, sc, fnErr)
	if len(hooks) > 0 {
		st.m.runHooks(hookContext(base), st.name, hooks, "rollback")
	}
	return err
}

func (st *txState) endScopeLocked(opCtx context.Context, sc *scope, fnErr error) (error, []hook) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done.Load() || sc.closed {
		return ErrTxDone, nil
	}
	return st.endSavepoint(opCtx, sc, fnErr)
}
