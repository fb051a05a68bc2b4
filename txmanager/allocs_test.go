package txmanager_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/txmanager"
)

// TestScopesWithoutObserverAllocateNoMore: without an Observer, opening and ending each
// kind of scope, with Do and with Begin, allocates no more than the counts below (what
// the scopes themselves need), so that observing costs nothing when it is off. The
// scopes run no
// statement, which keeps pgx's own allocations out of the counts; the outer transaction
// of the joined and savepoint cases is opened once, outside the measured function.
func TestScopesWithoutObserverAllocateNoMore(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	noop := func(context.Context) error { return nil }
	beginCommit := func(ctx context.Context, opts ...txmanager.Option) func() {
		return func() {
			tx, _, err := e.tm.Begin(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	do := func(ctx context.Context, opts ...txmanager.Option) func() {
		return func() {
			if err := e.tm.Do(ctx, noop, opts...); err != nil {
				t.Fatal(err)
			}
		}
	}

	cases := []struct {
		name  string
		inTx  bool // measured inside an outer transaction
		run   func(ctx context.Context) func()
		limit float64
	}{
		{"Do/transaction", false, func(ctx context.Context) func() { return do(ctx) }, 1},
		{"Do/joined", true, func(ctx context.Context) func() { return do(ctx) }, 0},
		{"Do/savepoint", true, func(ctx context.Context) func() { return do(ctx, txmanager.Nested()) }, 1},
		{"Begin/transaction", false, func(ctx context.Context) func() { return beginCommit(ctx) }, 2},
		{"Begin/joined", true, func(ctx context.Context) func() { return beginCommit(ctx) }, 1},
		{"Begin/savepoint", true, func(ctx context.Context) func() { return beginCommit(ctx, txmanager.Nested()) }, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var allocs float64
			measure := func(ctx context.Context) { allocs = testing.AllocsPerRun(100, c.run(ctx)) }
			if c.inTx {
				require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { measure(ctx); return nil }))
			} else {
				measure(ctx)
			}
			t.Logf("%s: %v allocations", c.name, allocs)
			assert.LessOrEqual(t, allocs, c.limit)
		})
	}
	e.requireReleased(t)
}
