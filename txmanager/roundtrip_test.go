package txmanager_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/internal/roundtrip"
	"github.com/uno-framework/uno/txmanager"
)

// countingEnv returns an env whose single connection counts its round trips.
func countingEnv(t *testing.T) (*env, *roundtrip.Counter) {
	rt := &roundtrip.Counter{}
	e := newEnv(t, rt.Install)
	return e, rt
}

// stageWriter stages rows into a table with COMMIT.
type stageWriter struct{ table string }

func (w stageWriter) QueueCommit(_ context.Context, b *pgx.Batch, items []any) error {
	for _, it := range items {
		b.Queue("insert into "+w.table+" (v) values ($1)", it)
	}
	return nil
}

// afterCommitWriter queues, after COMMIT, a query that records whether it ran in a
// transaction that has an id (the committed one) or outside.
type afterCommitWriter struct{ inTx *bool }

func (afterCommitWriter) QueueCommit(context.Context, *pgx.Batch, []any) error { return nil }

func (w afterCommitWriter) QueueAfterCommit(_ context.Context, b *pgx.Batch, _ []any) error {
	b.Queue("select txid_current_if_assigned() is not null").QueryRow(func(row pgx.Row) error {
		return row.Scan(w.inTx)
	})
	return nil
}

func TestAfterCommitStatementsRideWithCommitOutsideTheTransaction(t *testing.T) {
	e, rt := countingEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	inTx := true
	do := func() {
		require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
			if err := e.insert(ctx, tbl, "x"); err != nil {
				return err
			}
			return txmanager.Stage(ctx, afterCommitWriter{&inTx}, "mark")
		}))
	}
	do() // warm the statement cache
	before := rt.Load()
	do()
	assert.Equal(t, int64(2), rt.Load()-before, "BEGIN+insert, then COMMIT with the after-commit query")
	assert.False(t, inTx, "the after-commit query ran after COMMIT, outside the transaction")
	e.requireReleased(t)
}

func TestRoundTripsAreTheFewestPossible(t *testing.T) {
	e, rt := countingEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	tm := e.tm
	ins := func(ctx context.Context) error { return e.insert(ctx, tbl, "x") }
	nested := func(fn func(context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error { return tm.Do(ctx, fn, txmanager.Nested()) }
	}
	seq := func(fns ...func(context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error {
			for _, fn := range fns {
				if err := fn(ctx); err != nil {
					return err
				}
			}
			return nil
		}
	}
	failingNested := func(ctx context.Context) error {
		err := tm.Do(ctx, func(ctx context.Context) error {
			if err := ins(ctx); err != nil {
				return err
			}
			return errBoom
		}, txmanager.Nested())
		if err == errBoom {
			return nil
		}
		return err
	}
	returning := func(ctx context.Context) error { // the shape of ent's Create
		var id int64
		return tm.Querier(ctx).QueryRow(ctx, "insert into "+tbl+" (v) values ($1) returning id", "r").Scan(&id)
	}
	stage := func(ctx context.Context) error { return txmanager.Stage(ctx, stageWriter{tbl}, "staged") }
	joined := func(fn func(context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error { return tm.Do(ctx, fn) }
	}
	beginFunc := func(ctx context.Context) error { // hand-written pgx, for reference
		return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "insert into "+tbl+" (v) values ($1)", "x")
			return err
		})
	}

	cases := []struct {
		name string
		fn   func(context.Context) error
		want int64
		raw  bool // not run in Do
	}{
		{"empty Do", func(context.Context) error { return nil }, 0, false},
		{"Do with an empty Nested scope", nested(func(context.Context) error { return nil }), 0, false},
		{"one statement (BEGIN+stmt, COMMIT)", ins, 2, false},
		{"one QueryRow ... RETURNING", returning, 2, false},
		{"statement + Nested scope with a statement", seq(ins, nested(ins)), 3, false},
		{"Nested scope as first statement", nested(ins), 2, false},
		{"two sibling Nested scopes + statement after", seq(ins, nested(ins), nested(ins), ins), 5, false},
		{"three levels deep", seq(ins, nested(seq(ins, nested(seq(ins, nested(ins)))))), 5, false},
		{"joined Required scope adds nothing", seq(ins, joined(ins)), 3, false},
		{"failing Nested scope (adds ROLLBACK TO)", seq(ins, failingNested), 4, false},
		{"staged items only (BEGIN+writes+COMMIT)", stage, 1, false},
		{"statement + staged items", seq(ins, stage), 2, false},
		{"pgx.BeginFunc with one statement", beginFunc, 3, true},
	}
	run := func(fn func(context.Context) error, raw bool) {
		if raw {
			require.NoError(t, fn(ctx))
			return
		}
		require.NoError(t, tm.Do(ctx, fn))
	}
	// Warm up the connection and its statement cache.
	for _, c := range cases {
		run(c.fn, c.raw)
	}
	for _, c := range cases {
		before := rt.Load()
		run(c.fn, c.raw)
		got := rt.Load() - before
		assert.Equal(t, c.want, got, c.name)
		t.Logf("%-45s %d round trips", c.name, got)
	}
	e.requireReleased(t)
}

func TestFirstRunOfAStatementInAFreshSavepointCostsOnlyPgxsPreparation(t *testing.T) {
	e, rt := countingEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	tm := e.tm
	ins := func(ctx context.Context) error { return e.insert(ctx, tbl, "x") }
	// A statement neither the Manager nor the connection has seen.
	fresh := "insert into " + tbl + " (v) values ($1) -- first run"
	do := func() int64 {
		before := rt.Load()
		require.NoError(t, tm.Do(ctx, func(ctx context.Context) error {
			if err := ins(ctx); err != nil {
				return err
			}
			return tm.Do(ctx, func(ctx context.Context) error {
				_, err := tm.Querier(ctx).Exec(ctx, fresh, "y")
				return err
			}, txmanager.Nested())
		}))
		return rt.Load() - before
	}
	// Warm the connection up: ins and SAVEPOINT prepared.
	require.NoError(t, tm.Do(ctx, func(ctx context.Context) error {
		if err := ins(ctx); err != nil {
			return err
		}
		return tm.Do(ctx, ins, txmanager.Nested())
	}))
	first, second, third := do(), do(), do()
	t.Logf("statement + Nested scope with a new statement: first run %d, second %d, then %d round trips", first, second, third)
	// BEGIN+ins, SAVEPOINT, the statement parsed and run at once, COMMIT.
	assert.EqualValues(t, 4, first, "first run: one round trip more than a prepared statement")
	// Known to the Manager, not yet prepared on the connection: pgx prepares it.
	assert.EqualValues(t, 4, second)
	assert.EqualValues(t, 3, third, "prepared: the SAVEPOINT travels with the statement")
	assert.Equal(t, []string{"x", "x", "x", "y", "x", "y", "x", "y"}, e.rows(t, tbl))
	e.requireReleased(t)
}

func TestFirstRunOfAStatementThatFailsToParseRollsBackOnlyItsSavepoint(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	tbl := e.table(t)
	tm := e.tm
	err := tm.Do(ctx, func(ctx context.Context) error {
		e.mustInsert(t, ctx, tbl, "kept")
		nestedErr := tm.Do(ctx, func(ctx context.Context) error {
			_, err := tm.Querier(ctx).Exec(ctx, "insert into no_such_table_first_run (v) values ($1)", "lost")
			return err
		}, txmanager.Nested())
		require.Error(t, nestedErr)
		e.mustInsert(t, ctx, tbl, "after")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"kept", "after"}, e.rows(t, tbl))
}
