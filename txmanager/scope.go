package txmanager

import (
	"context"
	"fmt"
)

// scopeKind is how a scope opened by [Manager.Do] or [Manager.Begin] relates to the
// transaction its context carries.
type scopeKind uint8

const (
	scopeNone      scopeKind = iota // no transaction (Supports, NotSupported, Never)
	scopeJoined                     // joined the context's transaction
	scopeSavepoint                  // a savepoint in the context's transaction
	scopeRoot                       // a transaction of its own
)

// opened is a scope that openScope opened. For scopeJoined, sc is the scope joined;
// for scopeSavepoint, the new savepoint scope (its context); for scopeNone, ctx is the
// context to run with (the transaction suspended, or none to begin with). A scopeRoot
// scope is only decided: its transaction is created per attempt by the caller.
type opened struct {
	kind scopeKind
	sc   *scope
	ctx  context.Context
}

// openScope applies the propagation of o to ctx: the one place where Do and Begin decide
// whether a scope joins the context's transaction, opens a savepoint in it, begins a
// transaction of its own or runs without one.
func (m *Manager) openScope(ctx context.Context, o *options) (opened, error) {
	cur := m.current(ctx)
	if cur != nil {
		o.joinTopAsNested(cur)
	}
	switch o.prop {
	case PropagationRequired, PropagationSupports, PropagationMandatory:
		if cur != nil {
			if err := checkJoin(cur, o); err != nil {
				return opened{}, err
			}
			cur.st.mu.Unlock()
			return opened{kind: scopeJoined, sc: cur, ctx: ctx}, nil
		}
		switch o.prop {
		case PropagationSupports:
			return opened{kind: scopeNone, ctx: ctx}, nil
		case PropagationMandatory:
			return opened{}, ErrNoTransaction
		}
		return opened{kind: scopeRoot, ctx: ctx}, nil
	case PropagationNested:
		if cur != nil {
			if err := checkJoin(cur, o); err != nil {
				return opened{}, err
			}
			sc := cur.st.pushSavepoint(ctx)
			cur.st.mu.Unlock()
			return opened{kind: scopeSavepoint, sc: sc, ctx: sc}, nil
		}
		return opened{kind: scopeRoot, ctx: ctx}, nil
	case PropagationRequiresNew:
		return opened{kind: scopeRoot, ctx: ctx}, nil
	case PropagationNotSupported:
		if cur != nil {
			ctx = suspend(ctx)
		}
		return opened{kind: scopeNone, ctx: ctx}, nil
	default: // PropagationNever
		if cur != nil {
			return opened{}, ErrTransactionExists
		}
		return opened{kind: scopeNone, ctx: ctx}, nil
	}
}

// joinTopAsNested turns a scope that would join cur into a savepoint scope when cur is
// the root scope of a JoinAsNested transaction.
func (o *options) joinTopAsNested(cur *scope) {
	if cur.level != 0 || !cur.st.joinAsNested {
		return
	}
	switch o.prop {
	case PropagationRequired, PropagationSupports, PropagationMandatory:
		o.prop = PropagationNested
	}
}

// checkJoin checks that cur can be joined (or get a savepoint) with o; it locks st.
func checkJoin(cur *scope, o *options) error {
	st := cur.st
	if err := st.lock(cur); err != nil {
		return err
	}
	if o.iso != "" && o.iso != st.iso {
		st.mu.Unlock()
		have := string(st.iso)
		if have == "" {
			have = "the server default"
		}
		return fmt.Errorf("%w: requested %s, the transaction has %s", ErrIncompatibleTransaction, o.iso, have)
	}
	return nil
}

// callJoined runs fn in cur's transaction; fn's failure (or panic) marks cur
// rollback-only.
func callJoined(ctx context.Context, cur *scope, fn func(context.Context) error) (err error) {
	returned := false
	defer func() {
		if !returned {
			cur.markRollbackOnly(errPanicked)
		}
	}()
	err = fn(ctx)
	returned = true
	if err != nil {
		cur.markRollbackOnly(err)
	}
	return err
}

// callJoinedObserved is callJoined under the Manager's Observer: fn runs with the
// context StartScope returns.
func (m *Manager) callJoinedObserved(ctx context.Context, cur *scope, fn func(context.Context) error, o *options) (err error) {
	octx, end := m.startScope(ctx, o, cur.level, 0, true)
	ended := false
	defer func() {
		if !ended {
			end(ScopeEnd{Outcome: OutcomeRollbackOnly, Err: errPanicked})
		}
	}()
	err = callJoined(octx, cur, fn)
	ended = true
	end(joinedEnd(err))
	return err
}

// callNestedObserved is callNested under the Manager's Observer: the savepoint scope
// runs with the context StartScope returns.
func (m *Manager) callNestedObserved(ctx context.Context, sc *scope, fn func(context.Context) error, o *options) (err error) {
	octx, end := m.startScope(sc.Context, o, sc.level, 0, false)
	sc.Context = octx
	ended := false
	defer func() {
		if !ended {
			end(ScopeEnd{Outcome: OutcomeRolledBack, Err: errPanicked})
		}
	}()
	err = callNested(ctx, sc, fn)
	ended = true
	end(endOf(err, true, false))
	return err
}

// callNested runs fn in savepoint scope sc and ends the scope: released when fn
// succeeds, rolled back to its savepoint when fn fails or panics.
func callNested(ctx context.Context, sc *scope, fn func(context.Context) error) (err error) {
	returned := false
	defer func() {
		if !returned {
			_ = sc.st.endScope(ctx, ctx, sc, errPanicked)
		}
	}()
	fnErr := fn(sc)
	returned = true
	return sc.st.endScope(ctx, ctx, sc, fnErr)
}
