package txmanager

import (
	"context"
	"errors"
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
	cancel context.CancelFunc
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
	switch op.kind {
	case scopeJoined:
		return &Tx{m: m, kind: scopeJoined, sc: op.sc, base: ctx}, ctx, nil
	case scopeSavepoint:
		return &Tx{m: m, kind: scopeSavepoint, sc: op.sc, base: ctx}, op.ctx, nil
	case scopeRoot:
		return m.beginRoot(ctx, &o)
	default:
		return &Tx{m: m, kind: scopeNone, base: op.ctx}, op.ctx, nil
	}
}

func (m *Manager) beginRoot(ctx context.Context, o *options) (*Tx, context.Context, error) {
	t := &Tx{m: m, kind: scopeRoot, base: ctx}
	txCtx := ctx
	if o.timeout > 0 {
		txCtx, t.cancel = context.WithTimeout(ctx, o.timeout)
	}
	st := m.newState(txCtx, o)
	t.sc = &st.root
	return t, t.sc, nil
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
	switch t.kind {
	case scopeSavepoint:
		return t.sc.st.endScope(ctx, t.base, t.sc, nil)
	case scopeRoot:
		err := t.sc.st.end(ctx, t.base, nil)
		if t.cancel != nil {
			t.cancel()
		}
		return err
	}
	return nil
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
	case scopeSavepoint:
		err = t.sc.st.endScope(ctx, t.base, t.sc, errRolledBack)
	case scopeRoot:
		err = t.sc.st.end(ctx, t.base, errRolledBack)
		if t.cancel != nil {
			t.cancel()
		}
	}
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
