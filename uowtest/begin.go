package uowtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

// rollbackTimeout bounds the rollback of the test's transaction at cleanup.
const rollbackTimeout = 30 * time.Second

// unitsKey is the context key under which Begin stores the units of work of the test.
type unitsKey struct{}

// Begin returns a context that carries a transaction of units' transaction manager,
// rolled back when the test ends (tb.Cleanup), and remembers units for [Emitted] and
// [Deliver]. Pass the context to the use-cases under test: their Do calls run as
// savepoint scopes of this transaction (see the package documentation for what that
// means). opts are those of the transaction (txmanager.WithIsolation to match the
// isolation level the use-cases ask for, for instance); JoinAsNested is always added.
//
// The transaction belongs to the test's goroutine: run the use-cases of one Begin one
// after the other, as the test does. The context ends with the test (tb.Context).
func Begin(tb testing.TB, units *uow.Manager, opts ...txmanager.Option) context.Context {
	tb.Helper()
	if units == nil {
		tb.Fatal("uowtest: Begin needs the *uow.Manager the use-cases under test run on")
		return nil
	}
	base := context.WithValue(tb.Context(), unitsKey{}, units)
	tx, ctx, err := units.TxManager().Begin(base, append(opts, txmanager.JoinAsNested())...)
	if err != nil {
		tb.Fatalf("uowtest: begin the test's transaction: %v", err)
		return nil
	}
	tb.Cleanup(func() {
		// tb.Context is cancelled before cleanups run: roll back on a context of its own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(base), rollbackTimeout)
		defer cancel()
		if err := tx.Rollback(rctx); err != nil && !errors.Is(err, txmanager.ErrTxDone) {
			tb.Errorf("uowtest: roll back the test's transaction: %v", err)
		}
	})
	return ctx
}

// unitsFrom returns the units Begin stored in ctx.
func unitsFrom(tb testing.TB, ctx context.Context) *uow.Manager {
	tb.Helper()
	units, ok := ctx.Value(unitsKey{}).(*uow.Manager)
	if !ok {
		tb.Fatal("uowtest: the context does not come from uowtest.Begin; pass the context Begin returned (or one derived from it)")
	}
	return units
}
