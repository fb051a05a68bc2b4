package txmanager

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pendingSQL returns the SQL of the pending control statements.
func pendingSQL(st *txState) []string {
	out := []string{}
	for _, p := range st.pend {
		out = append(out, p.sql)
	}
	return out
}

func newTestState(o options) *txState {
	m := &Manager{}
	return m.newState(context.Background(), &o)
}

func TestPipelineQueuesBeginAndSavepointsUntilAStatement(t *testing.T) {
	st := newTestState(options{iso: "serializable", readOnly: true})
	assert.Equal(t, []string{"begin isolation level serializable read only"}, pendingSQL(st))

	sp1 := st.pushSavepoint(context.Background())
	sp2 := st.pushSavepoint(sp1)
	assert.Equal(t, []string{"begin isolation level serializable read only", "savepoint uno_sp_1", "savepoint uno_sp_2"}, pendingSQL(st))
	assert.Equal(t, 2, sp2.level)

	b := st.prefixBatch("insert into t values ($1)", []any{1}, true, true)
	var sqls []string
	for _, qq := range b.QueuedQueries {
		sqls = append(sqls, qq.SQL)
	}
	assert.Equal(t, []string{"begin isolation level serializable read only", "savepoint uno_sp_1", "savepoint uno_sp_2",
		"insert into t values ($1)", xidSQL}, sqls)
	assert.Equal(t, []any{1}, b.QueuedQueries[3].Arguments)
	assert.NotNil(t, b.QueuedQueries[4].Fn, "the transaction id is read by a callback")
}

func TestPipelineDropsTheSavepointOfAScopeThatSentNothing(t *testing.T) {
	st := newTestState(options{})
	sp1 := st.pushSavepoint(context.Background())
	st.pushSavepoint(sp1)
	st.mu.Lock()
	defer st.mu.Unlock()
	// The inner scope ends first, then the outer one, neither having run a statement.
	err, hooks := st.endSavepoint(context.Background(), st.top(), nil)
	require.NoError(t, err)
	assert.Empty(t, hooks)
	assert.Equal(t, []string{"begin", "savepoint uno_sp_1"}, pendingSQL(st))
	err, _ = st.endSavepoint(context.Background(), sp1, errors.New("failed"))
	assert.EqualError(t, err, "failed", "a failed scope that sent nothing needs no ROLLBACK TO")
	assert.Equal(t, []string{"begin"}, pendingSQL(st))
}

func TestPipelineQueuesReleaseAndDropsInnerOnes(t *testing.T) {
	st := newTestState(options{})
	st.pend = st.pend[:0]
	st.begun = true
	sp1 := st.pushSavepoint(context.Background())
	sp2 := st.pushSavepoint(sp1)
	st.pend = st.pend[:0] // both SAVEPOINTs were sent
	sp1.sp, sp2.sp = spEstablished, spEstablished
	st.mu.Lock()
	defer st.mu.Unlock()
	err, _ := st.endSavepoint(context.Background(), sp2, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"release savepoint uno_sp_2"}, pendingSQL(st))
	err, _ = st.endSavepoint(context.Background(), sp1, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"release savepoint uno_sp_1"}, pendingSQL(st), "releasing the outer savepoint releases the inner one")
}

func TestPipelineFailureOfTheRoundTripIsTheStatementsNotBegins(t *testing.T) {
	st := newTestState(options{})
	sp := st.pushSavepoint(context.Background())
	err := st.prefixFailed(0, io.ErrUnexpectedEOF)
	assert.Same(t, io.ErrUnexpectedEOF, err, "the statement's error, as pgx reported it")
	assert.NotContains(t, st.broken.Error(), "BEGIN")
	assert.Equal(t, spFailed, sp.sp)
	assert.Empty(t, st.pend)

	st = newTestState(options{})
	err = st.prefixFailed(0, &pgconn.PgError{Severity: "ERROR", Code: "25001", Message: "nope"})
	assert.ErrorContains(t, err, "BEGIN failed", "the server rejected BEGIN itself")
}

func TestMayWrite(t *testing.T) {
	for sql, want := range map[string]bool{
		"select 1":                    false,
		"  SELECT * from t":           false,
		"(select 1) union (select 2)": false,
		"-- comment\nselect 1":        false,
		"/* c */ values (1)":          false,
		"show search_path":            false,
		"insert into t values (1)":    true,
		"UPDATE t set v = 1":          true,
		"delete from t":               true,
		"with x as (insert into t values (1) returning 1) select * from x": true,
		"merge into t using s on true when matched then do nothing":        true,
		"create table t (v int)": true,
		"":                       false,
	} {
		assert.Equal(t, want, mayWrite(sql), sql)
	}
}

func TestClassifyCommitFailure(t *testing.T) {
	errorAt := &pgconn.PgError{Severity: "ERROR", Code: "40001"}
	fatal := &pgconn.PgError{Severity: "FATAL", Code: "57P01"}
	assert.Equal(t, outcomeRolledBack, classifyCommitFailure(errorAt, true), "COMMIT answered with an ERROR rolled back")
	assert.Equal(t, outcomeUnknown, classifyCommitFailure(fatal, true), "a FATAL may come after the commit")
	assert.Equal(t, outcomeRolledBack, classifyCommitFailure(fatal, false), "a statement before COMMIT failed: COMMIT never ran")
	assert.Equal(t, outcomeUnknown, classifyCommitFailure(io.ErrUnexpectedEOF, true))
	assert.Equal(t, outcomeUnknown, classifyCommitFailure(io.ErrUnexpectedEOF, false), "the whole batch, COMMIT included, was sent")
}

func TestCommitOutcomeErrorIsNeverSafeToRetry(t *testing.T) {
	err := error(&CommitOutcomeError{TxID: 42, Err: &pgconn.PgError{Severity: "FATAL"}})
	assert.ErrorIs(t, err, ErrCommitOutcomeUnknown)
	assert.False(t, pgconn.SafeToRetry(err))
	assert.Contains(t, err.Error(), "txid_status(42)")
}
