package txmanager_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/txmanager"
)

var errBoom = errors.New("boom")

func TestRequiredJoinsTheOuterTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	var outerPID, innerPID int32
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		outerPID = e.pid(t, ctx)
		e.mustInsert(t, ctx, tbl, "outer")
		return e.tm.Do(ctx, func(ctx context.Context) error {
			innerPID = e.pid(t, ctx)
			assert.True(t, txmanager.InTransaction(ctx))
			return e.insert(ctx, tbl, "inner")
		})
	})
	require.NoError(t, err)
	assert.Equal(t, outerPID, innerPID, "the joined scope runs on the outer transaction's connection")
	assert.Equal(t, []string{"outer", "inner"}, e.rows(t, tbl))

	// Joined work goes away with the outer transaction.
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "outer2")
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error { return e.insert(ctx, tbl, "inner2") },
			txmanager.WithPropagation(txmanager.PropagationRequired)))
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, []string{"outer", "inner"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestNestedRunsInASavepointOnTheSameConnection(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	var outerPID, nestedPID int32
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		outerPID = e.pid(t, ctx)
		e.mustInsert(t, ctx, tbl, "outer")
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			nestedPID = e.pid(t, ctx)
			return e.insert(ctx, tbl, "nested-ok")
		}, txmanager.Nested()))
		err := e.tm.Do(ctx, func(ctx context.Context) error {
			e.mustInsert(t, ctx, tbl, "nested-failed")
			return errBoom
		}, txmanager.Nested())
		require.ErrorIs(t, err, errBoom, "the failed scope's error comes back to its caller")
		// The transaction goes on after the failed scope.
		return e.insert(ctx, tbl, "after")
	})
	require.NoError(t, err)
	assert.Equal(t, outerPID, nestedPID)
	assert.Equal(t, []string{"outer", "nested-ok", "after"}, e.rows(t, tbl))

	// A nested scope whose statement failed (aborting the transaction) is rolled back to
	// its savepoint and the outer transaction can still commit.
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "outer2")
		err := e.tm.Do(ctx, func(ctx context.Context) error {
			_, err := e.tm.Querier(ctx).Exec(ctx, "insert into no_such_table values (1)")
			return err
		}, txmanager.Nested())
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		assert.Equal(t, "42P01", pgErr.Code)
		return e.insert(ctx, tbl, "after2")
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"outer", "nested-ok", "after", "outer2", "after2"}, e.rows(t, tbl))

	// Without a transaction, Nested begins one.
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		assert.True(t, txmanager.InTransaction(ctx))
		e.mustInsert(t, ctx, tbl, "alone")
		return errBoom
	}, txmanager.Nested())
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, []string{"outer", "nested-ok", "after", "outer2", "after2"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestNestedThreeLevelsWithTheMiddleOneFailing(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "level1")
		err := e.tm.Do(ctx, func(ctx context.Context) error {
			e.mustInsert(t, ctx, tbl, "level2")
			require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
				return e.insert(ctx, tbl, "level3")
			}, txmanager.Nested()))
			e.mustInsert(t, ctx, tbl, "level2-after-level3")
			return errBoom
		}, txmanager.Nested())
		require.ErrorIs(t, err, errBoom)
		// The innermost scope succeeded, but it lived inside the failed one.
		return e.insert(ctx, tbl, "level1-after")
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"level1", "level1-after"}, e.rows(t, tbl))

	// The innermost failing keeps the other two.
	tbl2 := e.table(t)
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl2, "level1")
		return e.tm.Do(ctx, func(ctx context.Context) error {
			e.mustInsert(t, ctx, tbl2, "level2")
			err := e.tm.Do(ctx, func(ctx context.Context) error {
				e.mustInsert(t, ctx, tbl2, "level3")
				return errBoom
			}, txmanager.Nested())
			require.ErrorIs(t, err, errBoom)
			return e.insert(ctx, tbl2, "level2-after")
		}, txmanager.Nested())
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"level1", "level2", "level2-after"}, e.rows(t, tbl2))
	e.requireReleased(t)
}

func TestRequiresNewCommitsEvenWhenTheOuterRollsBack(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	var outerPID, newPID int32
	err := e.tm.Do(ctx, func(outer context.Context) error {
		outerPID = e.pid(t, outer)
		e.mustInsert(t, outer, tbl, "outer")
		require.NoError(t, e.tm.Do(outer, func(ctx context.Context) error {
			newPID = e.pid(t, ctx)
			// A separate transaction does not see the outer one's uncommitted row.
			var n int
			require.NoError(t, e.tm.Querier(ctx).QueryRow(ctx, "select count(*) from "+tbl).Scan(&n))
			assert.Zero(t, n)
			return e.insert(ctx, tbl, "new")
		}, txmanager.RequiresNew()))
		// The outer transaction is still there after the inner one ended.
		assert.Equal(t, outerPID, e.pid(t, outer))
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	assert.NotEqual(t, outerPID, newPID, "RequiresNew runs on another connection")
	assert.Equal(t, []string{"new"}, e.rows(t, tbl))

	// And its failure leaves the outer transaction alone.
	err = e.tm.Do(ctx, func(outer context.Context) error {
		e.mustInsert(t, outer, tbl, "outer2")
		err := e.tm.Do(outer, func(ctx context.Context) error {
			e.mustInsert(t, ctx, tbl, "new2")
			return errBoom
		}, txmanager.RequiresNew())
		require.ErrorIs(t, err, errBoom)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"new", "outer2"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestSupportsJoinsOrRunsWithoutTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	// Without a transaction: statements run on the pool, in autocommit.
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		assert.False(t, txmanager.InTransaction(ctx))
		assert.IsType(t, (*pgxpool.Pool)(nil), e.tm.Querier(ctx))
		assert.ErrorIs(t, txmanager.OnCommit(ctx, func(context.Context) error { return nil }), txmanager.ErrNoTransaction)
		e.mustInsert(t, ctx, tbl, "autocommit")
		return errBoom
	}, txmanager.Supports())
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, []string{"autocommit"}, e.rows(t, tbl), "nothing to roll back without a transaction")

	// With one: it joins it, on the same connection, and fails with it.
	var outerPID, innerPID int32
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		outerPID = e.pid(t, ctx)
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			innerPID = e.pid(t, ctx)
			return e.insert(ctx, tbl, "joined")
		}, txmanager.Supports()))
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, outerPID, innerPID)
	assert.Equal(t, []string{"autocommit"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestMandatoryNeedsATransaction(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	called := false
	err := e.tm.Do(ctx, func(context.Context) error { called = true; return nil }, txmanager.Mandatory())
	require.ErrorIs(t, err, txmanager.ErrNoTransaction)
	assert.False(t, called)

	var outerPID, innerPID int32
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		outerPID = e.pid(t, ctx)
		e.mustInsert(t, ctx, tbl, "outer")
		return e.tm.Do(ctx, func(ctx context.Context) error {
			innerPID = e.pid(t, ctx)
			return e.insert(ctx, tbl, "mandatory")
		}, txmanager.Mandatory())
	})
	require.NoError(t, err)
	assert.Equal(t, outerPID, innerPID)
	assert.Equal(t, []string{"outer", "mandatory"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestNotSupportedSuspendsTheTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	var outerPID, innerPID int32
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		outerPID = e.pid(t, ctx)
		e.mustInsert(t, ctx, tbl, "outer")
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			assert.False(t, txmanager.InTransaction(ctx))
			assert.IsType(t, (*pgxpool.Pool)(nil), e.tm.Querier(ctx))
			innerPID = e.pid(t, ctx)
			return e.insert(ctx, tbl, "outside")
		}, txmanager.NotSupported()))
		assert.True(t, txmanager.InTransaction(ctx), "the outer transaction resumes")
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	assert.NotEqual(t, outerPID, innerPID, "the suspended transaction keeps its connection")
	assert.Equal(t, []string{"outside"}, e.rows(t, tbl))

	// Without a transaction it simply runs.
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		assert.False(t, txmanager.InTransaction(ctx))
		return e.insert(ctx, tbl, "plain")
	}, txmanager.NotSupported()))
	assert.Equal(t, []string{"outside", "plain"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestNeverRefusesATransaction(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	called := false
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "outer")
		return e.tm.Do(ctx, func(context.Context) error { called = true; return nil }, txmanager.Never())
	})
	require.ErrorIs(t, err, txmanager.ErrTransactionExists)
	assert.False(t, called)
	assert.Equal(t, []string{}, e.rows(t, tbl), "the outer transaction rolled back with the error")

	err = e.tm.Do(ctx, func(ctx context.Context) error {
		assert.False(t, txmanager.InTransaction(ctx))
		return e.insert(ctx, tbl, "never")
	}, txmanager.Never())
	require.NoError(t, err)
	assert.Equal(t, []string{"never"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestRollbackOnlyWhenAJoinedScopesErrorIsSwallowed(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	errInner := errors.New("inner failed")

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "outer")
		_ = e.tm.Do(ctx, func(ctx context.Context) error {
			e.mustInsert(t, ctx, tbl, "inner")
			return errInner
		}) // swallowed
		return nil
	})
	require.ErrorIs(t, err, txmanager.ErrRollbackOnly)
	require.ErrorIs(t, err, errInner)
	assert.Equal(t, []string{}, e.rows(t, tbl))

	// A joined scope that panics (and whose panic is recovered) does the same.
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "outer")
		func() {
			defer func() { _ = recover() }()
			_ = e.tm.Do(ctx, func(context.Context) error { panic("inner panic") })
		}()
		return nil
	})
	require.ErrorIs(t, err, txmanager.ErrRollbackOnly)
	assert.Equal(t, []string{}, e.rows(t, tbl))

	// Inside a savepoint scope, the joined failure rolls back that scope only.
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "outer")
		err := e.tm.Do(ctx, func(ctx context.Context) error {
			e.mustInsert(t, ctx, tbl, "nested")
			_ = e.tm.Do(ctx, func(context.Context) error { return errInner })
			return nil
		}, txmanager.Nested())
		require.ErrorIs(t, err, txmanager.ErrRollbackOnly)
		require.ErrorIs(t, err, errInner)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"outer"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestReadOnlyTransactionRejectsWrites(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		var ro string
		require.NoError(t, e.tm.Querier(ctx).QueryRow(ctx, "show transaction_read_only").Scan(&ro))
		assert.Equal(t, "on", ro)
		return e.insert(ctx, tbl, "write")
	}, txmanager.ReadOnly())
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "25006", pgErr.Code)
	assert.Equal(t, []string{}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestTransactionOptionsApplyWhenBeginning(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)

	show := func(ctx context.Context, setting string) string {
		var v string
		require.NoError(t, e.tm.Querier(ctx).QueryRow(ctx, "show "+setting).Scan(&v))
		return v
	}
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		assert.Equal(t, "serializable", show(ctx, "transaction_isolation"))
		assert.Equal(t, "on", show(ctx, "transaction_read_only"))
		assert.Equal(t, "on", show(ctx, "transaction_deferrable"))
		// Joining with the same isolation is fine; options that cannot weaken the
		// transaction are ignored when joining.
		require.NoError(t, e.tm.Do(ctx, func(context.Context) error { return nil },
			txmanager.WithIsolation(pgx.Serializable), txmanager.ReadOnly()))
		return nil
	}, txmanager.WithIsolation(pgx.Serializable), txmanager.ReadOnly(), txmanager.Deferrable(), txmanager.WithName("opts"))
	require.NoError(t, err)

	err = e.tm.Do(ctx, func(ctx context.Context) error {
		assert.Equal(t, "repeatable read", show(ctx, "transaction_isolation"))
		err := e.tm.Do(ctx, func(context.Context) error { return nil }, txmanager.WithIsolation(pgx.Serializable))
		require.ErrorIs(t, err, txmanager.ErrIncompatibleTransaction)
		err = e.tm.Do(ctx, func(context.Context) error { return nil }, txmanager.Nested(), txmanager.WithIsolation(pgx.ReadCommitted))
		require.ErrorIs(t, err, txmanager.ErrIncompatibleTransaction)
		return nil
	}, txmanager.WithIsolation(pgx.RepeatableRead))
	require.NoError(t, err)

	err = e.tm.Do(ctx, func(context.Context) error { return nil }, txmanager.WithIsolation("chaos"))
	require.ErrorContains(t, err, "unknown isolation level")
	err = e.tm.Do(ctx, func(context.Context) error { return nil }, txmanager.WithPropagation(42))
	require.ErrorContains(t, err, "unknown propagation")
	e.requireReleased(t)
}

func TestQuerierOutsideATransactionIsThePool(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	assert.Same(t, e.pool, e.tm.Querier(ctx))
	assert.Same(t, e.pool, txmanager.QuerierFrom(ctx, e.pool))
	assert.Same(t, e.pool, e.tm.Pool())
	assert.False(t, txmanager.InTransaction(ctx))
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		assert.NotSame(t, e.pool, txmanager.QuerierFrom(ctx, e.pool))
		return nil
	}))
}

func TestCommitFailsWhenAStatementErrorWasIgnored(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "kept?")
		_, _ = e.tm.Querier(ctx).Exec(ctx, "insert into no_such_table values (1)") // ignored
		return nil
	})
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code)
	assert.ErrorContains(t, err, "COMMIT rolled back")
	assert.Equal(t, []string{}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestNewValidatesItsConfig(t *testing.T) {
	e := newEnv(t)
	_, err := txmanager.New(nil, txmanager.Config{})
	require.ErrorContains(t, err, "needs a pool")

	cfg := txmanager.Config{Retry: txmanager.RetryPolicy{MaxAttempts: -1, Multiplier: 0.5, RandomizationFactor: 2}}
	err = cfg.Validate()
	require.Error(t, err)
	assert.ErrorContains(t, err, "retry.max_attempts")
	assert.ErrorContains(t, err, "retry.multiplier")
	assert.ErrorContains(t, err, "retry.randomization_factor")
	_, err = txmanager.New(e.pool, cfg)
	require.Error(t, err)

	require.NoError(t, txmanager.Config{}.Validate())
	err = e.tm.Do(testCtx(t), func(context.Context) error { return nil },
		txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: -2}))
	require.ErrorContains(t, err, "invalid retry policy")
}
