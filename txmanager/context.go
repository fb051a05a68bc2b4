package txmanager

import (
	"context"
	"strconv"
)

// ctxKey is the context key under which a *scope is stored. A nil *scope under it hides
// the transaction of an outer context (NotSupported, hooks).
type ctxKey struct{}

// scope is one level of a transaction: the root (the transaction itself) or a savepoint.
// Joined scopes (Required inside a transaction) do not get one: they use the scope of
// their context. The scope is also the context fn receives, which saves allocating a
// context per Do; its Value returns the scope itself under ctxKey.
type scope struct {
	context.Context

	st    *txState
	level int // 0 for the root, 1.. for savepoints: the savepoint is uno_sp_<level>
	sp    spState
	// All fields below are guarded by st.mu.
	closed       bool
	rollbackOnly bool
	cause        error // the error of the joined scope that made it rollback-only
	// Marks into the transaction's hook and staged lists where this scope's entries start.
	commitMark, rollbackMark, stageMark int
}

// Value returns the scope itself for ctxKey and defers to the parent context otherwise.
func (s *scope) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return s
	}
	return s.Context.Value(key)
}

// String describes the context for debugging.
func (s *scope) String() string {
	if s.level == 0 {
		return "txmanager transaction context"
	}
	return "txmanager savepoint context uno_sp_" + strconv.Itoa(s.level)
}

// scopeFrom returns the scope ctx carries, or nil.
func scopeFrom(ctx context.Context) *scope {
	if s, ok := ctx.(*scope); ok {
		return s
	}
	if ctx == nil {
		return nil
	}
	s, _ := ctx.Value(ctxKey{}).(*scope)
	return s
}

// suspend returns ctx without its transaction.
func suspend(ctx context.Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, (*scope)(nil))
}

// markRollbackOnly records that a scope joined to sc failed with cause.
func (sc *scope) markRollbackOnly(cause error) {
	st := sc.st
	st.mu.Lock()
	if !st.done.Load() && !sc.closed && !sc.rollbackOnly {
		sc.rollbackOnly = true
		sc.cause = cause
	}
	st.mu.Unlock()
}
