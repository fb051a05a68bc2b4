package txmanager_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/txmanager"
)

func TestPanicRollsBackAndPanicsOn(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	l := &hookLog{t: t}

	assert.PanicsWithValue(t, "boom", func() {
		_ = e.tm.Do(ctx, func(ctx context.Context) error {
			require.NoError(t, txmanager.OnRollback(ctx, l.hook("rollback")))
			e.mustInsert(t, ctx, tbl, "x")
			panic("boom")
		})
	})
	assert.Equal(t, []string{}, e.rows(t, tbl))
	assert.Equal(t, []string{"rollback"}, l.got)
	e.requireReleased(t)

	// A panic in a nested scope goes through every level, and each rolls back.
	assert.PanicsWithValue(t, "deep", func() {
		_ = e.tm.Do(ctx, func(ctx context.Context) error {
			e.mustInsert(t, ctx, tbl, "outer")
			return e.tm.Do(ctx, func(ctx context.Context) error {
				e.mustInsert(t, ctx, tbl, "nested")
				panic("deep")
			}, txmanager.Nested())
		})
	})
	assert.Equal(t, []string{}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestContextCancellationRollsBack(t *testing.T) {
	e := newEnv(t)
	tbl := e.table(t)

	// Cancelled between statements: fn even returns nil.
	ctx, cancel := context.WithCancel(testCtx(t))
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "x")
		cancel()
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []string{}, e.rows(t, tbl))
	e.requireReleased(t)

	// Cancelled during a statement.
	ctx, cancel = context.WithCancel(testCtx(t))
	defer cancel()
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "y")
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := e.tm.Querier(ctx).Exec(ctx, "select pg_sleep(30)")
		return err
	})
	require.Error(t, err)
	assert.Equal(t, []string{}, e.rows(t, tbl))
	e.requireReleased(t)

	// The pool is fine afterwards.
	require.NoError(t, e.tm.Do(testCtx(t), func(ctx context.Context) error { return e.insert(ctx, tbl, "z") }))
	assert.Equal(t, []string{"z"}, e.rows(t, tbl))
}

func TestTimeoutRollsBack(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	// The deadline passes while fn works on something else.
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "x")
		<-ctx.Done()
		return nil
	}, txmanager.WithTimeout(500*time.Millisecond))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, []string{}, e.rows(t, tbl))
	e.requireReleased(t)

	// The deadline passes during a statement.
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "y")
		_, err := e.tm.Querier(ctx).Exec(ctx, "select pg_sleep(30)")
		return err
	}, txmanager.WithTimeout(500*time.Millisecond))
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err), "got %v", err)
	assert.Equal(t, []string{}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestConcurrentUseIsAnErrorNotARace(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	var ok, busy atomic.Int32
	var leaked context.Context
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		leaked = ctx
		e.mustInsert(t, ctx, tbl, "owner")
		q := e.tm.Querier(ctx)

		// While rows are open, the transaction is busy, for another goroutine as for this one.
		rows, err := q.Query(ctx, "select generate_series(1, 3)")
		require.NoError(t, err)
		errc := make(chan error)
		go func() {
			_, err := e.tm.Querier(ctx).Exec(ctx, "insert into "+tbl+" (v) values ('intruder')")
			errc <- err
		}()
		require.ErrorIs(t, <-errc, txmanager.ErrTxBusy)
		_, err = q.Exec(ctx, "select 1")
		require.ErrorIs(t, err, txmanager.ErrTxBusy)
		n := 0
		for rows.Next() {
			n++
		}
		require.NoError(t, rows.Err())
		assert.Equal(t, 3, n)

		// Goroutines hammering the transaction at once: each statement either runs or
		// fails with ErrTxBusy; the connection never sees two at a time.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 10 {
					err := e.insert(ctx, tbl, "hammer")
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, txmanager.ErrTxBusy):
						busy.Add(1)
					default:
						t.Errorf("unexpected error: %v", err)
					}
				}
			})
		}
		wg.Wait()
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, int32(80), ok.Load()+busy.Load())
	assert.Len(t, e.rows(t, tbl), 1+int(ok.Load()))

	// A context kept past Do is dead.
	assert.False(t, txmanager.InTransaction(leaked))
	_, err = e.tm.Querier(leaked).Exec(leaked, "select 1")
	require.ErrorIs(t, err, txmanager.ErrTxDone)
	require.ErrorIs(t, txmanager.OnCommit(leaked, func(context.Context) error { return nil }), txmanager.ErrTxDone)
	require.ErrorIs(t, e.tm.Do(leaked, func(context.Context) error { return nil }), txmanager.ErrTxDone)
	e.requireReleased(t)
}

func TestRowsLeftOpenAreClosedAtCommit(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		_, err := e.tm.Querier(ctx).Query(ctx, "insert into "+tbl+" (v) values ('returned') returning id")
		return err // rows never read nor closed
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"returned"}, e.rows(t, tbl))

	// ... and a failure they hide surfaces.
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		_, err := e.tm.Querier(ctx).Query(ctx, "insert into "+tbl+" (v) values (null) returning id")
		return err
	})
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "23502", pgErr.Code)
	e.requireReleased(t)
}

func TestBeginForCodeWithoutCallbacks(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	// A Tx that begins the transaction; a savepoint Tx inside it rolled back.
	tx, txCtx, err := e.tm.Begin(ctx)
	require.NoError(t, err)
	assert.True(t, txmanager.InTransaction(txCtx))
	_, err = tx.Querier().Exec(ctx, "insert into "+tbl+" (v) values ('via Tx.Querier')")
	require.NoError(t, err)
	sp, spCtx, err := e.tm.Begin(txCtx, txmanager.Nested())
	require.NoError(t, err)
	e.mustInsert(t, spCtx, tbl, "savepoint")
	require.NoError(t, sp.Rollback(ctx))
	require.ErrorIs(t, sp.Commit(ctx), txmanager.ErrTxDone)
	// A joined Tx costs nothing; its Commit does nothing.
	joined, jCtx, err := e.tm.Begin(txCtx)
	require.NoError(t, err)
	e.mustInsert(t, jCtx, tbl, "joined")
	require.NoError(t, joined.Commit(ctx))
	require.NoError(t, tx.Commit(ctx))
	require.ErrorIs(t, tx.Commit(ctx), txmanager.ErrTxDone)
	assert.Equal(t, []string{"via Tx.Querier", "joined"}, e.rows(t, tbl))

	// A joined Tx's Rollback makes the transaction rollback-only.
	tx, txCtx, err = e.tm.Begin(ctx)
	require.NoError(t, err)
	e.mustInsert(t, txCtx, tbl, "doomed")
	joined, _, err = e.tm.Begin(txCtx, txmanager.Mandatory())
	require.NoError(t, err)
	require.NoError(t, joined.Rollback(ctx))
	require.ErrorIs(t, tx.Commit(ctx), txmanager.ErrRollbackOnly)
	assert.Len(t, e.rows(t, tbl), 2)

	// Ending the outer Tx while an inner one is open rolls everything back.
	tx, txCtx, err = e.tm.Begin(ctx)
	require.NoError(t, err)
	e.mustInsert(t, txCtx, tbl, "outer")
	_, spCtx, err = e.tm.Begin(txCtx, txmanager.Nested())
	require.NoError(t, err)
	e.mustInsert(t, spCtx, tbl, "inner never ended")
	require.ErrorContains(t, tx.Commit(ctx), "still open")
	assert.Len(t, e.rows(t, tbl), 2)

	// A Tx without a transaction runs on the pool.
	none, noneCtx, err := e.tm.Begin(ctx, txmanager.Supports())
	require.NoError(t, err)
	assert.False(t, txmanager.InTransaction(noneCtx))
	assert.Same(t, e.pool, none.Querier())
	require.NoError(t, none.Commit(ctx))
	_, _, err = e.tm.Begin(ctx, txmanager.Mandatory())
	require.ErrorIs(t, err, txmanager.ErrNoTransaction)

	// Rolled back explicitly.
	tx, txCtx, err = e.tm.Begin(ctx)
	require.NoError(t, err)
	e.mustInsert(t, txCtx, tbl, "rolled back")
	require.NoError(t, tx.Rollback(ctx))
	assert.Len(t, e.rows(t, tbl), 2)
	e.requireReleased(t)
}

func TestBatchesAndCopyRunInTheTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		q := e.tm.Querier(ctx)
		// The first statement of the transaction is a batch: BEGIN travels with it.
		b := &pgx.Batch{}
		var tagged bool
		b.Queue("insert into "+tbl+" (v) values ($1)", "batch").Exec(func(ct pgconn.CommandTag) error {
			tagged = ct.RowsAffected() == 1
			return nil
		})
		var count int
		b.Queue("select count(*) from " + tbl).QueryRow(func(row pgx.Row) error { return row.Scan(&count) })
		require.NoError(t, q.SendBatch(ctx, b).Close())
		assert.True(t, tagged)
		assert.Equal(t, 1, count)

		// COPY in a savepoint scope: the SAVEPOINT is flushed first.
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			n, err := e.tm.Querier(ctx).CopyFrom(ctx, pgx.Identifier{tbl}, []string{"v"},
				pgx.CopyFromRows([][]any{{"copy1"}, {"copy2"}}))
			assert.Equal(t, int64(2), n)
			return err
		}, txmanager.Nested()))
		err := e.tm.Do(ctx, func(ctx context.Context) error {
			_, err := e.tm.Querier(ctx).CopyFrom(ctx, pgx.Identifier{tbl}, []string{"v"},
				pgx.CopyFromRows([][]any{{"copy-dropped"}}))
			require.NoError(t, err)
			return errBoom
		}, txmanager.Nested())
		require.ErrorIs(t, err, errBoom)

		// A batch after the released scope carries its RELEASE.
		b = &pgx.Batch{}
		b.Queue("insert into "+tbl+" (v) values ($1)", "batch2")
		br := q.SendBatch(ctx, b)
		_, err = br.Exec()
		require.NoError(t, err)
		return br.Close()
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"batch", "copy1", "copy2", "batch2"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestEmptyDoAcquiresNoConnection(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	l := &hookLog{t: t}
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		require.NoError(t, txmanager.OnCommit(ctx, l.hook("commit")))
		return e.tm.Do(ctx, func(context.Context) error { return nil }, txmanager.Nested())
	}))
	assert.Equal(t, []string{"commit"}, l.got, "an empty transaction commits")
	assert.Zero(t, e.pool.Stat().TotalConns(), "no connection was even opened")
	require.ErrorIs(t, e.tm.Do(ctx, func(context.Context) error { return errBoom }), errBoom)
	assert.Zero(t, e.pool.Stat().TotalConns())
}

func TestEveryQueryExecModeWorks(t *testing.T) {
	modes := map[string]pgx.QueryExecMode{
		"CacheStatement": pgx.QueryExecModeCacheStatement,
		"CacheDescribe":  pgx.QueryExecModeCacheDescribe,
		"DescribeExec":   pgx.QueryExecModeDescribeExec,
		"Exec":           pgx.QueryExecModeExec,
		"SimpleProtocol": pgx.QueryExecModeSimpleProtocol,
	}
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.DefaultQueryExecMode = mode })
			ctx := testCtx(t)
			tbl := e.table(t)
			for range 2 { // cold, then warm statements
				err := e.tm.Do(ctx, func(ctx context.Context) error {
					e.mustInsert(t, ctx, tbl, "outer")
					require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
						var id int64
						return e.tm.Querier(ctx).QueryRow(ctx, "insert into "+tbl+" (v) values ($1) returning id", "nested").Scan(&id)
					}, txmanager.Nested()))
					// Fails when executed (NOT NULL), after its SAVEPOINT.
					err := e.tm.Do(ctx, func(ctx context.Context) error {
						_, err := e.tm.Querier(ctx).Exec(ctx, "insert into "+tbl+" (v) values ($1)", nil)
						return err
					}, txmanager.Nested())
					var pgErr *pgconn.PgError
					require.ErrorAs(t, err, &pgErr)
					assert.Equal(t, "23502", pgErr.Code)
					// Fails to parse.
					err = e.tm.Do(ctx, func(ctx context.Context) error {
						_, err := e.tm.Querier(ctx).Exec(ctx, "insert into no_such_table values (1)")
						return err
					}, txmanager.Nested())
					require.ErrorAs(t, err, &pgErr)
					assert.Equal(t, "42P01", pgErr.Code)
					return e.insert(ctx, tbl, "after")
				})
				require.NoError(t, err)
			}
			assert.Equal(t, []string{"outer", "nested", "after", "outer", "nested", "after"}, e.rows(t, tbl))
			e.requireReleased(t)
		})
	}
}

func TestAStatementThatStopsParsingBeforeItsSavepointFailsTheTransaction(t *testing.T) {
	// DescribeExec prepares every statement of a batch before running it: a statement
	// known to parse, that no longer does, fails before the SAVEPOINT sent with it ran.
	e := newEnv(t, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	})
	ctx := testCtx(t)
	tbl := e.table(t)
	gone := e.table(t)
	insertGone := func(ctx context.Context) error { return e.insert(ctx, gone, "x") }
	for range 2 { // the statement is now known to succeed
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			e.mustInsert(t, ctx, tbl, "outer")
			return e.tm.Do(ctx, insertGone, txmanager.Nested())
		}))
	}
	_, err := e.pool.Exec(ctx, "drop table "+gone)
	require.NoError(t, err)

	err = e.tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "outer-doomed")
		nerr := e.tm.Do(ctx, insertGone, txmanager.Nested())
		require.Error(t, nerr)
		return nil // the savepoint scope's failure could not be contained
	})
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code)
	assert.ErrorContains(t, err, "before its scope's savepoint was established")
	assert.Equal(t, []string{"outer", "outer"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestAPanickingBatchCallbackDoesNotLeakTheConnection(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	assert.PanicsWithValue(t, "callback", func() {
		_ = e.tm.Do(ctx, func(ctx context.Context) error {
			b := &pgx.Batch{}
			b.Queue("insert into " + tbl + " (v) values ('x')").Exec(func(pgconn.CommandTag) error { panic("callback") })
			_ = e.tm.Querier(ctx).SendBatch(ctx, b) // left open: closed by Do, whose callback panics
			return nil
		})
	})
	assert.Equal(t, []string{}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestTimedOutFirstStatementIsReportedAsTheStatementNotBegin(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		end  func(ctx context.Context) (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 100*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancelled", func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stmtErr error
			err := e.tm.Do(ctx, func(ctx context.Context) error {
				sctx, cancel := tc.end(ctx)
				defer cancel()
				// BEGIN travels in the same round trip as this statement.
				_, stmtErr = e.tm.Querier(sctx).Exec(sctx, "select pg_sleep(5)")
				return stmtErr
			}, txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 1}))
			require.Error(t, stmtErr)
			assert.NotContains(t, stmtErr.Error(), "BEGIN")
			assert.NotContains(t, err.Error(), "BEGIN")
			assert.ErrorIs(t, stmtErr, tc.want)
			e.requireReleased(t)
		})
	}
}

// otherKey keys a value of a context that differs from Begin's.
type otherKey struct{}

// uncomparableCtx is a context whose values cannot be compared with ==.
type uncomparableCtx struct {
	context.Context
	tags []string
}

// TestStatementContextIsTheScopesForBeginsContext: a statement given the context Begin
// was given runs with the scope's context (here carrying the transaction's timeout);
// any other context, including one whose type cannot be compared, is left as it is.
func TestStatementContextIsTheScopesForBeginsContext(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)

	begun := context.WithoutCancel(ctx)
	tx, txCtx, err := e.tm.Begin(begun, txmanager.WithTimeout(time.Minute))
	require.NoError(t, err)
	sctx := tx.StatementContext(begun)
	assert.True(t, sctx == txCtx, "Begin's context gives the scope's")
	_, hasDeadline := sctx.Deadline()
	assert.True(t, hasDeadline, "the statement runs under the transaction's timeout")
	e.mustInsert(t, sctx, tbl, "in the scope")
	other := context.WithValue(begun, otherKey{}, "other")
	assert.True(t, tx.StatementContext(other) == other, "another context is left as it is")
	require.NoError(t, tx.Commit(txCtx))

	odd := uncomparableCtx{Context: ctx, tags: []string{"a"}}
	tx, txCtx, err = e.tm.Begin(odd)
	require.NoError(t, err)
	assert.NotPanics(t, func() { _ = tx.StatementContext(odd) })
	_, isOdd := tx.StatementContext(odd).(uncomparableCtx)
	assert.True(t, isOdd)
	require.NoError(t, tx.Rollback(txCtx))
	assert.Equal(t, []string{"in the scope"}, e.rows(t, tbl))
	e.requireReleased(t)
}
