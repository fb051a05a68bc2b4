package telemetry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/uno-framework/uno/txmanager"
)

// raiseSerializationFailure makes the server fail a statement with SQLSTATE 40001, as a
// real write skew under SERIALIZABLE would.
const raiseSerializationFailure = `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$`

// TestSpanTreeOfADoWithANestedScopeAndARetry: a use-case's Do whose first attempt fails
// with a serialization failure and is retried, each attempt with a Nested scope: one
// "uno.tx" span per attempt (retried, then committed), each the parent of its
// savepoint's span, and the statements (otelpgx) under the scope they ran in.
func TestSpanTreeOfADoWithANestedScopeAndARetry(t *testing.T) {
	e := newOtelEnv(t)
	ctx, useCase := e.tp.Tracer("test").Start(t.Context(), "use-case")
	attempts := 0
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		attempts++
		if _, err := e.tm.Querier(ctx).Exec(ctx, "SELECT 1"); err != nil {
			return err
		}
		if err := e.tm.Do(ctx, func(ctx context.Context) error {
			_, err := e.tm.Querier(ctx).Exec(ctx, "SELECT 2")
			return err
		}, txmanager.Nested()); err != nil {
			return err
		}
		if attempts == 1 {
			_, err := e.tm.Querier(ctx).Exec(ctx, raiseSerializationFailure)
			return err
		}
		return nil
	}, txmanager.WithName("transfer"))
	require.NoError(t, err)
	useCase.End()
	require.Equal(t, 2, attempts)

	txs := e.ended("uno.tx")
	require.Len(t, txs, 2)
	for i, tx := range txs {
		assert.Equal(t, useCase.SpanContext().SpanID(), tx.Parent().SpanID(), "attempt %d is a child of the use-case", i+1)
		attrs := attrMap(tx)
		assert.EqualValues(t, i+1, attrs["uno.tx.attempt"])
		assert.Equal(t, "required", attrs["uno.tx.propagation"])
		assert.Equal(t, "transfer", attrs["uno.tx.name"])
		assert.Equal(t, "default", attrs["uno.tx.isolation"])
	}
	assert.Equal(t, "retried", attrMap(txs[0])["uno.tx.outcome"])
	assert.Equal(t, "committed", attrMap(txs[1])["uno.tx.outcome"])

	sps := e.ended("uno.savepoint")
	require.Len(t, sps, 2)
	for i, sp := range sps {
		assert.Equal(t, txs[i].SpanContext().SpanID(), sp.Parent().SpanID(), "savepoint of attempt %d", i+1)
		assert.EqualValues(t, 1, attrMap(sp)["uno.tx.savepoint_depth"])
		assert.Equal(t, "released", attrMap(sp)["uno.tx.outcome"])
	}

	// Statements: pgx batch spans (BEGIN travels with the first statement) under the
	// attempt, the savepoint's under the savepoint.
	parents := map[trace.SpanID]int{}
	for _, s := range e.spans.Ended() {
		if s.Name() != "uno.tx" && s.Name() != "uno.savepoint" && s.Name() != "use-case" {
			parents[s.Parent().SpanID()]++
		}
	}
	for i := range 2 {
		assert.NotZero(t, parents[txs[i].SpanContext().SpanID()], "statements of attempt %d", i+1)
		assert.NotZero(t, parents[sps[i].SpanContext().SpanID()], "statements of the savepoint of attempt %d", i+1)
	}

	m := e.metrics(t)
	assert.EqualValues(t, 1, sum(m["uno.tx.retries"]))
	assert.EqualValues(t, 1, sum(m["uno.tx.scopes"], "uno.tx.kind=transaction", "uno.tx.outcome=committed"))
	assert.EqualValues(t, 1, sum(m["uno.tx.scopes"], "uno.tx.kind=transaction", "uno.tx.outcome=retried"))
	assert.EqualValues(t, 2, sum(m["uno.tx.scopes"], "uno.tx.kind=savepoint", "uno.tx.outcome=released"))
	assert.EqualValues(t, 2, sum(m["uno.tx.duration"], "uno.tx.kind=transaction"))
	assert.Zero(t, sum(m["uno.tx.savepoint.rollbacks"]))
}

// TestFailuresShowInSpansAndMetrics: a savepoint scope that fails and a transaction that
// rolls back end their spans in error and move the rollback metrics.
func TestFailuresShowInSpansAndMetrics(t *testing.T) {
	e := newOtelEnv(t)
	boom := errors.New("boom")
	err := e.tm.Do(t.Context(), func(ctx context.Context) error {
		if _, err := e.tm.Querier(ctx).Exec(ctx, "SELECT 1"); err != nil {
			return err
		}
		_ = e.tm.Do(ctx, func(ctx context.Context) error {
			_, err := e.tm.Querier(ctx).Exec(ctx, "SELECT 2")
			if err != nil {
				return err
			}
			return boom
		}, txmanager.Nested())
		return boom
	})
	require.ErrorIs(t, err, boom)

	sp := e.ended("uno.savepoint")
	require.Len(t, sp, 1)
	assert.Equal(t, "rolled_back", attrMap(sp[0])["uno.tx.outcome"])
	assert.Equal(t, "Error", sp[0].Status().Code.String())
	tx := e.ended("uno.tx")
	require.Len(t, tx, 1)
	assert.Equal(t, "rolled_back", attrMap(tx[0])["uno.tx.outcome"])
	assert.NotEmpty(t, tx[0].Events(), "the error is recorded")

	m := e.metrics(t)
	assert.EqualValues(t, 1, sum(m["uno.tx.savepoint.rollbacks"]))
	assert.EqualValues(t, 1, sum(m["uno.tx.scopes"], "uno.tx.kind=transaction", "uno.tx.outcome=rolled_back"))
	assert.Zero(t, sum(m["uno.tx.retries"]))
}

func attrMap(s sdktrace.ReadOnlySpan) map[string]any {
	out := map[string]any{}
	for _, a := range s.Attributes() {
		out[string(a.Key)] = a.Value.AsInterface()
	}
	return out
}
