package sqlcexample_test

import (
	"context"
	_ "embed"
	"errors"
	"os"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/examples/sqlc/db"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

//go:embed schema.sql
var tasksSchema string

// The transaction manager is sqlc's DBTX: the Queries are built once.
var _ db.DBTX = (*txmanager.Manager)(nil)

type app struct {
	tm       *txmanager.Manager
	units    *uow.Manager
	queries  *db.Queries
	observer *pgxpool.Pool
}

func newApp(t *testing.T) app {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	observer := pgtest.Pool(t)
	require.NoError(t, schema.MigratePool(ctx, observer))
	_, err := observer.Exec(ctx, tasksSchema+`; TRUNCATE sqlc_tasks; DELETE FROM uno_outbox`)
	require.NoError(t, err)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	units, err := uow.NewManager(tm, nil)
	require.NoError(t, err)
	return app{tm: tm, units: units, queries: db.New(tm), observer: observer}
}

// count returns what other sessions see.
func (a app) count(t *testing.T, query string) int {
	t.Helper()
	var n int
	require.NoError(t, a.observer.QueryRow(context.Background(), query).Scan(&n))
	return n
}

func TestSqlcQueriesRollBackWithTheUnitOfWork(t *testing.T) {
	a := newApp(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := a.units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		task, err := a.queries.CreateTask(ctx, "draft")
		require.NoError(t, err)
		n, err := a.queries.CountTasks(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n, "the unit of work sees its own insert")
		require.NoError(t, u.Emit(events.New("task.created", task)))
		return boom
	})
	require.ErrorIs(t, err, boom)
	assert.Zero(t, a.count(t, `SELECT count(*) FROM sqlc_tasks`), "the insert rolled back")
	assert.Zero(t, a.count(t, `SELECT count(*) FROM uno_outbox`), "and so did its event")
}

func TestSqlcQueriesCommitWithTheUnitOfWork(t *testing.T) {
	a := newApp(t)
	ctx := context.Background()
	err := a.units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		first, err := a.queries.CreateTask(ctx, "write the report")
		if err != nil {
			return err
		}
		if _, err := a.queries.CreateTask(ctx, "send it"); err != nil {
			return err
		}
		done, err := a.queries.MarkDone(ctx, first.ID)
		if err != nil {
			return err
		}
		assert.Equal(t, int64(1), done)

		// sqlc and pgx code of the same unit of work share its transaction.
		viaSqlc, err := a.queries.BackendAndTransaction(ctx)
		require.NoError(t, err)
		var pid int32
		var txid int64
		require.NoError(t, a.tm.Querier(ctx).QueryRow(ctx, `SELECT pg_backend_pid(), txid_current()`).Scan(&pid, &txid))
		assert.Equal(t, db.BackendAndTransactionRow{Pid: pid, Txid: txid}, viaSqlc)

		assert.Zero(t, a.count(t, `SELECT count(*) FROM sqlc_tasks`), "nothing visible before COMMIT")
		return u.Emit(events.New("task.created", first))
	})
	require.NoError(t, err)

	tasks, err := a.queries.ListTasks(ctx) // outside a unit of work: on the pool
	require.NoError(t, err)
	require.Len(t, tasks, 2)
	assert.Equal(t, "write the report", tasks[0].Title)
	assert.True(t, tasks[0].Done)
	assert.False(t, tasks[1].Done)
	assert.Equal(t, 1, a.count(t, `SELECT count(*) FROM uno_outbox`), "the event committed with the tasks")
}

// TestGeneratedCodeMatchesThePinnedGenerator keeps db/ and the go:generate line on the
// same sqlc version (CI does not run the generator; see generate.go).
func TestGeneratedCodeMatchesThePinnedGenerator(t *testing.T) {
	gen, err := os.ReadFile("generate.go")
	require.NoError(t, err)
	code, err := os.ReadFile("db/db.go")
	require.NoError(t, err)
	pinned := regexp.MustCompile(`sqlc@(v[0-9.]+) generate`).FindSubmatch(gen)
	require.NotNil(t, pinned, "generate.go pins the generator")
	generated := regexp.MustCompile(`//\s+sqlc (v[0-9.]+)`).FindSubmatch(code)
	require.NotNil(t, generated, "db/db.go names the sqlc version that wrote it")
	assert.Equal(t, string(pinned[1]), string(generated[1]))
}
