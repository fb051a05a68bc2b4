package txmanager_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/txmanager"
)

// TestJoinAsNestedGivesTopLevelScopesSavepoints: in a JoinAsNested transaction, a
// Required scope at its top level behaves as its own transaction would — its failure
// rolls back only its work and leaves the transaction usable — while scopes inside it
// join it as usual. Everything is on one connection and rolls back at the end.
func TestJoinAsNestedGivesTopLevelScopesSavepoints(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	tx, txCtx, err := e.tm.Begin(ctx, txmanager.JoinAsNested())
	require.NoError(t, err)
	outer := e.pid(t, txCtx)

	// A use-case that succeeds keeps its rows in the transaction.
	require.NoError(t, e.tm.Do(txCtx, func(ctx context.Context) error {
		assert.Equal(t, outer, e.pid(t, ctx))
		return e.insert(ctx, tbl, "kept")
	}))
	// A use-case whose inner Required scope fails, error swallowed, rolls back as a
	// whole (rollback-only inside its savepoint), not the test's transaction.
	err = e.tm.Do(txCtx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "dropped")
		_ = e.tm.Do(ctx, func(ctx context.Context) error { return errBoom })
		return nil
	})
	require.ErrorIs(t, err, txmanager.ErrRollbackOnly)
	// A use-case failing on a statement leaves the transaction usable.
	err = e.tm.Do(txCtx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "dropped too")
		return e.insert(ctx, "no_such_table", "x")
	})
	require.Error(t, err)
	// Begin (ent's client.Tx) at the top level gets a savepoint too.
	inner, innerCtx, err := e.tm.Begin(txCtx)
	require.NoError(t, err)
	e.mustInsert(t, innerCtx, tbl, "dropped by Rollback")
	require.NoError(t, inner.Rollback(innerCtx))

	var vs []string
	rows, err := e.tm.Querier(txCtx).Query(txCtx, "select v from "+tbl+" order by id")
	require.NoError(t, err)
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		vs = append(vs, v)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"kept"}, vs, "only the successful use-case's row is in the transaction")

	require.NoError(t, tx.Rollback(ctx))
	assert.Empty(t, e.rows(t, tbl), "nothing committed")
	e.requireReleased(t)
}

// TestStagedReturnsWhatWouldBeWrittenAtCommit: Staged sees the writer's items of every
// open scope and of the scopes that succeeded, not those rolled back, nor another
// writer's.
func TestStagedReturnsWhatWouldBeWrittenAtCommit(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	w1 := &tableWriter{table: tbl}
	w2 := &tableWriter{table: tbl}

	_, err := txmanager.Staged(ctx, w1)
	require.ErrorIs(t, err, txmanager.ErrNoTransaction)

	err = e.tm.Do(ctx, func(ctx context.Context) error {
		require.NoError(t, txmanager.Stage(ctx, w1, "a"))
		require.NoError(t, txmanager.Stage(ctx, w2, "other writer"))
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			return txmanager.Stage(ctx, w1, "b")
		}, txmanager.Nested()))
		_ = e.tm.Do(ctx, func(ctx context.Context) error {
			require.NoError(t, txmanager.Stage(ctx, w1, "rolled back"))
			return errBoom
		}, txmanager.Nested())
		return e.tm.Do(ctx, func(ctx context.Context) error {
			require.NoError(t, txmanager.Stage(ctx, w1, "c"))
			items, err := txmanager.Staged(ctx, w1)
			require.NoError(t, err)
			assert.Equal(t, []any{"a", "b", "c"}, items)
			return nil
		}, txmanager.Nested())
	})
	require.NoError(t, err)
	assert.Equal(t, [][]any{{"a", "b", "c"}}, w1.calls)
}
