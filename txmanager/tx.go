package txmanager

import (
	"context"
	"errors"
	"reflect"
)

// Tx is a scope opened by [Manager.Begin], for code that cannot pass a callback to Do
// (ent's dialect.Tx). Exactly one of Commit and Rollback must be called, on the
// goroutine that called Begin, innermost Tx first; until then a root Tx holds its
// connection (once a statement acquired it).
type Tx struct {
	m      *Manager
	kind   scopeKind
	sc     *scope
	base   context.Context
	from   context.Context // the context Begin was given
	ctx    context.Context // the context Begin returned
	cancel context.CancelFunc
	end    func(ScopeEnd) // the Observer's, called at Commit or Rollback; nil without one
	done   bool
}

// Begin opens a scope exactly as Do would (same propagation rules, lazy BEGIN and
// SAVEPOINT) and returns it with a context that carries it. Nothing is retried. A joined
// Tx's Commit does nothing and its Rollback marks the transaction rollback-only; a
// savepoint Tx releases or rolls back its savepoint; a Tx that began a transaction
// commits or rolls it back.
func (m *Manager) Begin(ctx context.Context, opts ...Option) (*Tx, context.Context, error) {
	var o options
	if len(opts) > 0 {
		if err := o.apply(opts); err != nil {
			return nil, ctx, err
		}
	}
	if m.readOnly {
		o.readOnly = true
	}
	op, err := m.openScope(ctx, &o)
	if err != nil {
		return nil, ctx, err
	}
	var t *Tx
	switch op.kind {
	case scopeJoined:
		t = &Tx{m: m, kind: scopeJoined, sc: op.sc, base: ctx, ctx: ctx}
		if m.observer != nil {
			t.ctx, t.end = m.startScope(ctx, &o, op.sc.level, 0, true)
		}
	case scopeSavepoint:
		t = &Tx{m: m, kind: scopeSavepoint, sc: op.sc, base: ctx, ctx: op.sc}
		if m.observer != nil {
			op.sc.Context, t.end = m.startScope(op.sc.Context, &o, op.sc.level, 0, false)
		}
	case scopeRoot:
		t = m.beginRoot(ctx, &o)
	default:
		t = &Tx{m: m, kind: scopeNone, base: op.ctx, ctx: op.ctx}
	}
	t.from = ctx
	return t, t.ctx, nil
}

func (m *Manager) beginRoot(ctx context.Context, o *options) *Tx {
	t := &Tx{m: m, kind: scopeRoot}
	if m.observer != nil {
		ctx, t.end = m.startScope(ctx, o, 0, 1, false)
	}
	t.base = ctx
	txCtx := ctx
	if o.timeout > 0 {
		txCtx, t.cancel = context.WithTimeout(ctx, o.timeout)
	}
	st := m.newState(txCtx, o)
	t.sc = &st.root
	t.ctx = t.sc
	return t
}

// StatementContext returns the context to run a statement of the scope with, for code
// that holds the Tx but is handed a context per statement (ent's dialect.Tx,
// database/sql's driver.Tx): the context Begin returned when ctx is the one Begin was
// given, so that the statement carries what the scope's context adds to it (the
// Observer's span, the transaction's timeout); any other ctx as it is.
func (t *Tx) StatementContext(ctx context.Context) context.Context {
	if sameContext(ctx, t.from) {
		return t.ctx
	}
	return ctx
}

// sameContext reports whether a and b are the same context, without comparing values
// of a type that cannot be compared.
func sameContext(a, b context.Context) bool {
	ta := reflect.TypeOf(a)
	return ta != nil && ta == reflect.TypeOf(b) && ta.Comparable() && a == b
}

// Querier returns what this scope's statements run through: its transaction, or the pool
// for a Tx without one. Use it where the context at hand lacks the transaction.
func (t *Tx) Querier() Querier {
	if t.sc == nil {
		return t.m.pool
	}
	return t.sc
}

// Commit ends the scope successfully: it commits a transaction the Tx began (returning
// an error wrapping ErrRollbackOnly if a joined scope failed, after rolling back),
// releases a savepoint (lazily), and does nothing for a joined Tx.
func (t *Tx) Commit(ctx context.Context) error {
	if t.done {
		return ErrTxDone
	}
	t.done = true
	var err error
	switch t.kind {
	case scopeSavepoint:
		err = t.sc.st.endScope(ctx, t.base, t.sc, nil)
	case scopeRoot:
		err = t.sc.st.end(ctx, t.base, nil)
		if t.cancel != nil {
			t.cancel()
		}
	}
	t.observe(err)
	return err
}

// Rollback ends the scope with a failure: it rolls back a transaction the Tx began or
// its savepoint, and marks a joined transaction rollback-only. It returns an error only
// when the rollback itself failed.
func (t *Tx) Rollback(ctx context.Context) error {
	if t.done {
		return ErrTxDone
	}
	t.done = true
	var err error
	switch t.kind {
	case scopeJoined:
		t.sc.markRollbackOnly(errRolledBack)
		t.observe(errRolledBack)
		return nil
	case scopeSavepoint:
		err = t.sc.st.endScope(ctx, t.base, t.sc, errRolledBack)
	case scopeRoot:
		err = t.sc.st.end(ctx, t.base, errRolledBack)
		if t.cancel != nil {
			t.cancel()
		}
	}
	t.observe(err)
	if errors.Is(err, errRolledBack) {
		// Only the rollback's own failure, if any, is news to the caller.
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range u.Unwrap() {
				if e != errRolledBack {
					return e
				}
			}
		}
		return nil
	}
	return err
}

// observe reports the end of the scope, with its error err, to the Observer.
func (t *Tx) observe(err error) {
	switch {
	case t.end == nil:
	case t.kind == scopeJoined:
		t.end(joinedEnd(err))
	default:
		t.end(endOf(err, t.kind == scopeSavepoint, false))
	}
}
