package txmanager_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/txmanager"
)

// runPair runs fn(0) and fn(1) concurrently and returns their errors.
func runPair(fn func(i int) error) [2]error {
	var errs [2]error
	done := make(chan struct{})
	go func() {
		defer close(done)
		errs[1] = fn(1)
	}()
	errs[0] = fn(0)
	<-done
	return errs
}

// await waits for ch to close or ctx to end.
func await(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeSkew runs two SERIALIZABLE transactions that each count the table's rows and then
// insert one; both read before either writes (on their first attempt), so they really
// conflict and one of them fails with 40001.
func writeSkew(t *testing.T, e *env, tbl string, policy txmanager.RetryPolicy) (errs [2]error, attempts [2]int32) {
	ctx := testCtx(t)
	var n [2]atomic.Int32
	read := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	errs = runPair(func(i int) error {
		return e.tm.Do(ctx, func(ctx context.Context) error {
			attempt := n[i].Add(1)
			var count int
			err := e.tm.Querier(ctx).QueryRow(ctx, "select count(*) from "+tbl).Scan(&count)
			if attempt == 1 {
				close(read[i])
				if werr := await(ctx, read[1-i]); werr != nil {
					return werr
				}
			}
			if err != nil {
				return err
			}
			return e.insert(ctx, tbl, fmt.Sprintf("tx%d saw %d", i, count))
		}, txmanager.WithIsolation(pgx.Serializable), txmanager.WithRetry(policy))
	})
	return errs, [2]int32{n[0].Load(), n[1].Load()}
}

func TestSerializationFailuresAreRetriedUntilBothCommit(t *testing.T) {
	e := newEnv(t)
	tbl := e.table(t)
	errs, attempts := writeSkew(t, e, tbl, txmanager.RetryPolicy{MaxAttempts: 10})
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	assert.Len(t, e.rows(t, tbl), 2, "both transactions committed")
	assert.Greater(t, attempts[0]+attempts[1], int32(2), "one of them was retried")
	assert.Contains(t, e.log.String(), "retrying the transaction")
	e.requireReleased(t)
}

func TestDeadlocksAreRetriedUntilBothCommit(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	e.mustInsert(t, ctx, tbl, "0")
	e.mustInsert(t, ctx, tbl, "0")
	ids := [2]int{1, 2}

	var n [2]atomic.Int32
	locked := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	bump := func(ctx context.Context, id int) error {
		_, err := e.tm.Querier(ctx).Exec(ctx, "update "+tbl+" set v = (v::int + 1)::text where id = $1", id)
		return err
	}
	errs := runPair(func(i int) error {
		return e.tm.Do(ctx, func(ctx context.Context) error {
			attempt := n[i].Add(1)
			err := bump(ctx, ids[i]) // locks my row
			if attempt == 1 {
				close(locked[i])
				if werr := await(ctx, locked[1-i]); werr != nil {
					return werr
				}
			}
			if err != nil {
				return err
			}
			return bump(ctx, ids[1-i]) // then the other's: a deadlock on the first attempt
		}, txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 5}))
	})
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	assert.Equal(t, []string{"2", "2"}, e.rows(t, tbl), "both transactions committed")
	// The victim runs again; when its retry locks its row before the winner's blocked
	// UPDATE got it, the pair deadlocks once more and the new victim runs again too.
	assert.GreaterOrEqual(t, n[0].Load()+n[1].Load(), int32(3), "the deadlock victim ran again")
	e.requireReleased(t)
}

func TestWithOneAttemptTheSerializationFailureIsReturned(t *testing.T) {
	e := newEnv(t)
	tbl := e.table(t)
	errs, attempts := writeSkew(t, e, tbl, txmanager.RetryPolicy{MaxAttempts: 1})
	assert.Equal(t, [2]int32{1, 1}, attempts, "nothing was retried")
	failed := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		failed++
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		assert.Equal(t, "40001", pgErr.Code)
		var retryErr *txmanager.RetryError
		assert.False(t, errors.As(err, &retryErr), "with one attempt the error itself comes back")
	}
	require.NotZero(t, failed, "the two transactions conflict")
	assert.Len(t, e.rows(t, tbl), 2-failed)
	e.requireReleased(t)
}

// raise40001 is a statement that fails with a serialization failure.
const raise40001 = `do $$ begin raise exception 'simulated conflict' using errcode = 'serialization_failure'; end $$`

func TestRetriesStopAfterMaxAttemptsWithARetryError(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	var attempts, commits, rollbacks int
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		attempts++
		require.NoError(t, txmanager.OnCommit(ctx, func(context.Context) error { commits++; return nil }))
		require.NoError(t, txmanager.OnRollback(ctx, func(context.Context) error { rollbacks++; return nil }))
		e.mustInsert(t, ctx, tbl, fmt.Sprint("attempt ", attempts))
		_, err := e.tm.Querier(ctx).Exec(ctx, raise40001)
		return err
	}) // the Manager's policy: 3 attempts
	var retryErr *txmanager.RetryError
	require.ErrorAs(t, err, &retryErr)
	assert.Equal(t, 3, retryErr.Attempts)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "40001", pgErr.Code)
	assert.ErrorContains(t, err, "after 3 attempts")
	assert.Equal(t, 3, attempts)
	assert.Equal(t, 0, commits)
	assert.Equal(t, 3, rollbacks, "each failed attempt ran its own rollback hooks, once")
	assert.Equal(t, []string{}, e.rows(t, tbl))

	// Swallowing the statement's error does not hide it: COMMIT rolls back, and the
	// transaction is retried.
	attempts = 0
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		attempts++
		if attempts == 1 {
			_, _ = e.tm.Querier(ctx).Exec(ctx, raise40001)
		}
		return e.insert(ctx, tbl, "second attempt")
	})
	// The insert after the swallowed error fails (25P02) and fn returns it; the
	// transaction saw 40001, so it is retried.
	require.NoError(t, err)
	assert.Equal(t, 2, attempts)
	assert.Equal(t, []string{"second attempt"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestSerializationFailureAtCommitIsRetried(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	// A deferred constraint trigger fails COMMIT with 40001 for rows marked 'fail'.
	_, err := e.pool.Exec(ctx, `
create function `+tbl+`_check() returns trigger language plpgsql as $$
begin
	if new.v = 'fail' then
		raise exception 'simulated conflict at commit' using errcode = 'serialization_failure';
	end if;
	return new;
end $$;
create constraint trigger `+tbl+`_check after insert on `+tbl+`
	deferrable initially deferred for each row execute function `+tbl+`_check();`)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = e.pool.Exec(context.Background(), "drop function if exists "+tbl+"_check() cascade") })

	attempts := 0
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		attempts++
		if attempts == 1 {
			return e.insert(ctx, tbl, "fail") // fails at COMMIT
		}
		return e.insert(ctx, tbl, "ok")
	})
	require.NoError(t, err)
	assert.Equal(t, 2, attempts)
	assert.Equal(t, []string{"ok"}, e.rows(t, tbl))

	// With one attempt the COMMIT's error comes back.
	err = e.tm.Do(ctx, func(ctx context.Context) error { return e.insert(ctx, tbl, "fail") },
		txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 1}))
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "40001", pgErr.Code)
	assert.Equal(t, []string{"ok"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestNothingIsRetriedInsideATransaction(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)

	var outer, joined, nested, requiresNew int
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		outer++
		err := e.tm.Do(ctx, func(ctx context.Context) error {
			joined++
			_, err := e.tm.Querier(ctx).Exec(ctx, raise40001)
			return err
		}, txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 5}))
		require.Error(t, err)
		err = e.tm.Do(ctx, func(ctx context.Context) error {
			nested++
			_, err := e.tm.Querier(ctx).Exec(ctx, raise40001)
			return err
		}, txmanager.Nested(), txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 5}))
		require.Error(t, err)
		// RequiresNew begins a transaction of its own: that one is retried.
		err = e.tm.Do(ctx, func(ctx context.Context) error {
			requiresNew++
			_, err := e.tm.Querier(ctx).Exec(ctx, raise40001)
			return err
		}, txmanager.RequiresNew(), txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 2}))
		var retryErr *txmanager.RetryError
		require.ErrorAs(t, err, &retryErr)
		return nil
	}, txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 1}))
	require.ErrorIs(t, err, txmanager.ErrRollbackOnly)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "40001", pgErr.Code)
	assert.Equal(t, 1, outer)
	assert.Equal(t, 1, joined)
	assert.Equal(t, 1, nested)
	assert.Equal(t, 2, requiresNew)

	// An outer transaction does not retry because of a RequiresNew one's failure.
	outer = 0
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		outer++
		return e.tm.Do(ctx, func(ctx context.Context) error {
			_, err := e.tm.Querier(ctx).Exec(ctx, raise40001)
			return err
		}, txmanager.RequiresNew(), txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 1}))
	})
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, 1, outer)
	e.requireReleased(t)
}
