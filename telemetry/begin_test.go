package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/uno-framework/uno/examples/bank"
	"github.com/uno-framework/uno/examples/bank/ent"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/entdriver"
	"github.com/uno-framework/uno/txmanager/sqldriver"
)

// TestSpansOfEntTransactions: the transactions ent opens itself (an UpdateOne runs in a
// dialect.Tx, txmanager's Begin) have spans as Do's scopes do. Outside a Do, a "uno.tx"
// span that is the root of its trace; inside one, a "uno.savepoint" span under the Do's
// attempt. Each ends with its outcome, and ent's statements are its children.
func TestSpansOfEntTransactions(t *testing.T) {
	e := newOtelEnv(t)
	ctx := t.Context()
	require.NoError(t, bank.MigratePool(ctx, e.pool))
	client := ent.NewClient(ent.Driver(entdriver.New(e.tm)))
	var id int64
	require.NoError(t, e.pool.QueryRow(ctx, `INSERT INTO accounts (owner, balance) VALUES ('ada', 10) RETURNING id`).Scan(&id))

	// Outside a Do: a transaction of ent's own, committed, then one that rolls back
	// (the balance's CHECK constraint fails the UPDATE).
	_, err := client.Account.UpdateOneID(id).AddBalance(5).Save(ctx)
	require.NoError(t, err)
	_, err = client.Account.UpdateOneID(id).AddBalance(-1000).Save(ctx)
	require.Error(t, err)

	txs := e.ended("uno.tx")
	require.Len(t, txs, 2)
	for i, tx := range txs {
		assert.False(t, tx.Parent().IsValid(), "ent's transaction %d is the root of its trace", i+1)
		assert.EqualValues(t, 1, attrMap(tx)["uno.tx.attempt"])
		assert.Equal(t, "nested", attrMap(tx)["uno.tx.propagation"])
		e.requireStatementUnder(t, tx, "UPDATE")
	}
	assert.Equal(t, "committed", attrMap(txs[0])["uno.tx.outcome"])
	assert.Equal(t, "rolled_back", attrMap(txs[1])["uno.tx.outcome"])
	assert.Equal(t, "Error", txs[1].Status().Code.String())

	// Inside a Do: savepoint scopes of the Do's transaction, one released, one rolled
	// back; the Do commits.
	ctx, useCase := e.tp.Tracer("test").Start(ctx, "use-case")
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		if _, err := client.Account.UpdateOneID(id).AddBalance(1).Save(ctx); err != nil {
			return err
		}
		_, err := client.Account.UpdateOneID(id).AddBalance(-1000).Save(ctx)
		require.Error(t, err)
		return nil
	}))
	useCase.End()
	var balance int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT balance FROM accounts WHERE id = $1`, id).Scan(&balance))
	assert.Equal(t, 16, balance)

	txs = e.ended("uno.tx")
	require.Len(t, txs, 3)
	do := txs[2]
	assert.Equal(t, useCase.SpanContext().SpanID(), do.Parent().SpanID())
	assert.Equal(t, "committed", attrMap(do)["uno.tx.outcome"])
	sps := e.ended("uno.savepoint")
	require.Len(t, sps, 2)
	for i, sp := range sps {
		assert.Equal(t, do.SpanContext().SpanID(), sp.Parent().SpanID(), "ent's scope %d is a child of the Do's attempt", i+1)
		assert.EqualValues(t, 1, attrMap(sp)["uno.tx.savepoint_depth"])
		e.requireStatementUnder(t, sp, "UPDATE")
	}
	assert.Equal(t, "released", attrMap(sps[0])["uno.tx.outcome"])
	assert.Equal(t, "rolled_back", attrMap(sps[1])["uno.tx.outcome"])
	assert.Equal(t, "Error", sps[1].Status().Code.String())

	m := e.metrics(t)
	assert.EqualValues(t, 2, sum(m["uno.tx.scopes"], "uno.tx.kind=transaction", "uno.tx.outcome=committed"))
	assert.EqualValues(t, 1, sum(m["uno.tx.scopes"], "uno.tx.kind=transaction", "uno.tx.outcome=rolled_back"))
	assert.EqualValues(t, 1, sum(m["uno.tx.savepoint.rollbacks"]))
	pgtest.RequireNoAcquired(t, e.pool)
}

// TestSpansOfSQLDriverTransactions: database/sql's BeginTx through sqldriver (txmanager's
// Begin) has the spans of Do's scopes: outside a Do a root "uno.tx", committed or rolled
// back; inside one a "uno.savepoint" under the Do's attempt.
func TestSpansOfSQLDriverTransactions(t *testing.T) {
	e := newOtelEnv(t)
	ctx := t.Context()
	db := sqldriver.Open(e.tm)
	t.Cleanup(func() { _ = db.Close() })

	for _, commit := range []bool{true, false} {
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "SELECT 1")
		require.NoError(t, err)
		if commit {
			require.NoError(t, tx.Commit())
		} else {
			require.NoError(t, tx.Rollback())
		}
	}
	txs := e.ended("uno.tx")
	require.Len(t, txs, 2)
	for i, tx := range txs {
		assert.False(t, tx.Parent().IsValid(), "transaction %d is the root of its trace", i+1)
		e.requireStatementUnder(t, tx, "SELECT 1")
	}
	assert.Equal(t, "committed", attrMap(txs[0])["uno.tx.outcome"])
	assert.Equal(t, "rolled_back", attrMap(txs[1])["uno.tx.outcome"])

	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "SELECT 2"); err != nil {
			return errors.Join(err, tx.Rollback())
		}
		return tx.Commit()
	}))
	txs = e.ended("uno.tx")
	require.Len(t, txs, 3)
	sps := e.ended("uno.savepoint")
	require.Len(t, sps, 1)
	assert.Equal(t, txs[2].SpanContext().SpanID(), sps[0].Parent().SpanID())
	assert.Equal(t, "released", attrMap(sps[0])["uno.tx.outcome"])
	e.requireStatementUnder(t, sps[0], "SELECT 2")
	pgtest.RequireNoAcquired(t, e.pool)
}

// TestSpansOfJoinedScopes: a scope that joins the context's transaction, through Do or
// Begin, has a "uno.join" span under the transaction's, which ends "joined", or
// "rollback_only" in error when the scope failed; joined scopes have no metrics.
func TestSpansOfJoinedScopes(t *testing.T) {
	e := newOtelEnv(t)
	ctx := t.Context()
	boom := errors.New("boom")

	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		if err := e.tm.Do(ctx, func(ctx context.Context) error {
			_, err := e.tm.Querier(ctx).Exec(ctx, "SELECT 1")
			return err
		}, txmanager.WithName("repository")); err != nil {
			return err
		}
		tx, ctx, err := e.tm.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Querier().Exec(ctx, "SELECT 2"); err != nil {
			return errors.Join(err, tx.Rollback(ctx))
		}
		return tx.Commit(ctx)
	}))
	txs := e.ended("uno.tx")
	require.Len(t, txs, 1)
	joins := e.ended("uno.join")
	require.Len(t, joins, 2)
	for i, j := range joins {
		assert.Equal(t, txs[0].SpanContext().SpanID(), j.Parent().SpanID(), "joined scope %d is a child of the transaction", i+1)
		assert.Equal(t, "joined", attrMap(j)["uno.tx.outcome"])
		assert.Equal(t, "required", attrMap(j)["uno.tx.propagation"])
		e.requireStatementUnder(t, j, fmt.Sprintf("SELECT %d", i+1))
	}
	assert.Equal(t, "repository", attrMap(joins[0])["uno.tx.name"])

	// A joined scope that fails, through Do and through Begin's Rollback: each marks the
	// transaction rollback-only, which rolls back.
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		_ = e.tm.Do(ctx, func(context.Context) error { return boom })
		return nil
	})
	require.ErrorIs(t, err, txmanager.ErrRollbackOnly)
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		tx, ctx, err := e.tm.Begin(ctx)
		if err != nil {
			return err
		}
		return tx.Rollback(ctx)
	})
	require.ErrorIs(t, err, txmanager.ErrRollbackOnly)
	joins = e.ended("uno.join")
	require.Len(t, joins, 4)
	txs = e.ended("uno.tx")
	require.Len(t, txs, 3)
	for i, j := range joins[2:] {
		assert.Equal(t, txs[i+1].SpanContext().SpanID(), j.Parent().SpanID())
		assert.Equal(t, "rollback_only", attrMap(j)["uno.tx.outcome"])
		assert.Equal(t, "Error", j.Status().Code.String())
		assert.Equal(t, "rolled_back", attrMap(txs[i+1])["uno.tx.outcome"])
	}

	// A joined scope that panics ends its span too.
	assert.Panics(t, func() {
		_ = e.tm.Do(ctx, func(ctx context.Context) error {
			return e.tm.Do(ctx, func(context.Context) error { panic("joined scope panics") })
		})
	})
	joins = e.ended("uno.join")
	require.Len(t, joins, 5)
	assert.Equal(t, "rollback_only", attrMap(joins[4])["uno.tx.outcome"])

	m := e.metrics(t)
	assert.EqualValues(t, 4, sum(m["uno.tx.scopes"]), "the four transactions, and no joined scope")
	assert.Zero(t, sum(m["uno.tx.scopes"], "uno.tx.outcome=joined"))
	pgtest.RequireNoAcquired(t, e.pool)
}

// requireStatementUnder fails unless the span (otelpgx's) of a statement whose text
// contains text descends from scope, directly or through a batch's span.
func (e *otelEnv) requireStatementUnder(t *testing.T, scope sdktrace.ReadOnlySpan, text string) {
	t.Helper()
	spans := e.spans.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	for _, s := range spans {
		if isScopeSpan(s) || !strings.Contains(attrString(s, "db.query.text"), text) {
			continue
		}
		for p := s; p != nil && !isScopeSpan(p); p = byID[p.Parent().SpanID()] {
			if parent := p.Parent().SpanID(); parent == scope.SpanContext().SpanID() {
				return
			}
		}
	}
	t.Fatalf("no span of a statement %q under %s %s", text, scope.Name(), scope.SpanContext().SpanID())
}

// attrString returns the attribute key of s as a string.
func attrString(s sdktrace.ReadOnlySpan, key string) string {
	v, _ := attrMap(s)[key].(string)
	return v
}

// isScopeSpan reports whether s is the span of a txmanager scope.
func isScopeSpan(s sdktrace.ReadOnlySpan) bool {
	switch s.Name() {
	case "uno.tx", "uno.savepoint", "uno.join":
		return true
	}
	return false
}
