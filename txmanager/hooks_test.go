package txmanager_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/txmanager"
)

// hookLog records hooks as they run, and checks they run without a transaction.
type hookLog struct {
	t   *testing.T
	got []string
}

func (l *hookLog) hook(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		assert.False(l.t, txmanager.InTransaction(ctx), "hook %s runs without a transaction", name)
		l.got = append(l.got, name)
		return nil
	}
}

func TestCommitHooksRunInOrderAndFollowTheirScopes(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	l := &hookLog{t: t}

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		require.NoError(t, txmanager.OnCommit(ctx, l.hook("c1")))
		require.NoError(t, txmanager.OnRollback(ctx, l.hook("r-outer")))
		e.mustInsert(t, ctx, tbl, "outer")

		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			require.NoError(t, txmanager.OnCommit(ctx, l.hook("c2-released-scope")))
			require.NoError(t, txmanager.OnRollback(ctx, l.hook("r-released-scope")))
			return e.insert(ctx, tbl, "nested-ok")
		}, txmanager.Nested()))

		err := e.tm.Do(ctx, func(ctx context.Context) error {
			require.NoError(t, txmanager.OnCommit(ctx, l.hook("dropped")))
			require.NoError(t, txmanager.OnRollback(ctx, l.hook("r-failed-scope")))
			e.mustInsert(t, ctx, tbl, "nested-failed")
			require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
				require.NoError(t, txmanager.OnCommit(ctx, l.hook("dropped-inner")))
				require.NoError(t, txmanager.OnRollback(ctx, l.hook("r-inner-of-failed-scope")))
				return nil
			}, txmanager.Nested()))
			return errBoom
		}, txmanager.Nested())
		require.ErrorIs(t, err, errBoom)
		// The failed scope's rollback hooks ran right after its rollback to the savepoint.
		assert.Equal(t, []string{"r-failed-scope", "r-inner-of-failed-scope"}, l.got)

		// A joined scope registers on the scope it joined.
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			return txmanager.OnCommit(ctx, l.hook("c3-joined"))
		}))
		require.NoError(t, txmanager.OnCommit(ctx, func(context.Context) error { panic("hook panics") }))
		require.NoError(t, txmanager.OnCommit(ctx, func(context.Context) error { return errors.New("hook fails") }))
		require.NoError(t, txmanager.OnCommit(ctx, func(ctx context.Context) error {
			// Commit hooks run after COMMIT: the rows are visible to everyone.
			assert.Len(t, e.rows(t, tbl), 2)
			l.got = append(l.got, "c4")
			return nil
		}))
		assert.Equal(t, []string{"r-failed-scope", "r-inner-of-failed-scope"}, l.got, "no commit hook before COMMIT")
		return nil
	})
	require.NoError(t, err, "a failing or panicking hook does not fail the commit")
	assert.Equal(t, []string{"r-failed-scope", "r-inner-of-failed-scope", "c1", "c2-released-scope", "c3-joined", "c4"}, l.got)
	assert.Equal(t, []string{"outer", "nested-ok"}, e.rows(t, tbl))
	assert.Contains(t, e.log.String(), "hook panicked")
	assert.Contains(t, e.log.String(), "hook panics")
	assert.Contains(t, e.log.String(), "hook fails")
	e.requireReleased(t)
}

func TestRollbackHooksRunWhenTheTransactionRollsBack(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	l := &hookLog{t: t}

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		require.NoError(t, txmanager.OnCommit(ctx, l.hook("commit-never-runs")))
		require.NoError(t, txmanager.OnRollback(ctx, l.hook("r1")))
		e.mustInsert(t, ctx, tbl, "x")
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			return txmanager.OnRollback(ctx, l.hook("r2-released-scope"))
		}, txmanager.Nested()))
		require.NoError(t, txmanager.OnRollback(ctx, l.hook("r3")))
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, []string{"r1", "r2-released-scope", "r3"}, l.got)

	// Hooks need a transaction.
	require.ErrorIs(t, txmanager.OnCommit(ctx, l.hook("x")), txmanager.ErrNoTransaction)
	require.ErrorIs(t, txmanager.OnRollback(ctx, l.hook("x")), txmanager.ErrNoTransaction)
	e.requireReleased(t)
}

// tableWriter is a CommitWriter that inserts its items into a table.
type tableWriter struct {
	table string
	calls [][]any
}

func (w *tableWriter) QueueCommit(_ context.Context, b *pgx.Batch, items []any) error {
	w.calls = append(w.calls, items)
	for _, it := range items {
		b.Queue("insert into "+w.table+" (v) values ($1)", it)
	}
	return nil
}

func TestStagedItemsFollowTheirScopesAndGoOutWithCommit(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	w1 := &tableWriter{table: tbl}
	w2 := &tableWriter{table: tbl}
	l := &hookLog{t: t}

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		require.NoError(t, txmanager.Stage(ctx, w1, "w1-a"))
		require.NoError(t, txmanager.Stage(ctx, w2, "w2-x"))
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			e.mustInsert(t, ctx, tbl, "statement")
			return txmanager.Stage(ctx, w1, "w1-b", "w1-c")
		}, txmanager.Nested()))
		require.ErrorIs(t, e.tm.Do(ctx, func(ctx context.Context) error {
			require.NoError(t, txmanager.Stage(ctx, w2, "dropped"))
			return errBoom
		}, txmanager.Nested()), errBoom)
		require.NoError(t, txmanager.Stage(ctx, w2, "w2-y"))
		// Staged items are not written before COMMIT.
		var n int
		require.NoError(t, e.tm.Querier(ctx).QueryRow(ctx, "select count(*) from "+tbl).Scan(&n))
		assert.Equal(t, 1, n)
		return txmanager.OnCommit(ctx, l.hook("after-commit"))
	})
	require.NoError(t, err)
	// Writers in the order of their first item, each with its items in order.
	assert.Equal(t, [][]any{{"w1-a", "w1-b", "w1-c"}}, w1.calls)
	assert.Equal(t, [][]any{{"w2-x", "w2-y"}}, w2.calls)
	assert.Equal(t, []string{"statement", "w1-a", "w1-b", "w1-c", "w2-x", "w2-y"}, e.rows(t, tbl))
	assert.Equal(t, []string{"after-commit"}, l.got)

	// A writer's statement that fails rolls everything back.
	bad := &tableWriter{table: "no_such_table"}
	l.got = nil
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "rolled-back")
		require.NoError(t, txmanager.OnCommit(ctx, l.hook("commit")))
		require.NoError(t, txmanager.OnRollback(ctx, l.hook("rollback")))
		return txmanager.Stage(ctx, bad, "x")
	})
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code)
	assert.Equal(t, []string{"rollback"}, l.got)
	assert.Len(t, e.rows(t, tbl), 6)

	// A transaction with staged items only is begun with them.
	w3 := &tableWriter{table: tbl}
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		return txmanager.Stage(ctx, w3, "staged-only")
	}))
	assert.Equal(t, "staged-only", e.rows(t, tbl)[6])

	require.ErrorIs(t, txmanager.Stage(ctx, w1, "x"), txmanager.ErrNoTransaction)
	e.requireReleased(t)
}
