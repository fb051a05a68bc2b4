package sqllibs_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/sqldriver"
)

type note struct {
	ID   int    `db:"id"`
	Body string `db:"body"`
}

// newSqlx returns a manager, an sqlx handle over sqldriver and an observer pool, with
// an empty notes table.
func newSqlx(t *testing.T) (*txmanager.Manager, *sqlx.DB, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.Pool(t)
	observer := pgtest.Pool(t)
	_, err := observer.Exec(context.Background(), `DROP TABLE IF EXISTS notes; CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)`)
	require.NoError(t, err)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	db := sqlx.NewDb(sqldriver.Open(tm), "postgres")
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return tm, db, observer
}

func countNotes(t *testing.T, observer *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, observer.QueryRow(context.Background(), `SELECT count(*) FROM notes`).Scan(&n))
	return n
}

func TestSqlxWritesRollBackAndCommitWithDo(t *testing.T) {
	tm, db, observer := newSqlx(t)
	ctx := context.Background()
	boom := errors.New("boom")

	err := tm.Do(ctx, func(ctx context.Context) error {
		_, err := db.NamedExecContext(ctx, `INSERT INTO notes (id, body) VALUES (:id, :body)`, note{1, "draft"})
		require.NoError(t, err)
		return boom
	})
	require.ErrorIs(t, err, boom)
	assert.Zero(t, countNotes(t, observer), "the sqlx write rolled back with the transaction")

	err = tm.Do(ctx, func(ctx context.Context) error {
		if _, err := db.NamedExecContext(ctx, `INSERT INTO notes (id, body) VALUES (:id, :body)`,
			[]note{{1, "one"}, {2, "two"}}); err != nil {
			return err
		}
		assert.Zero(t, countNotes(t, observer), "not visible outside before COMMIT")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 2, countNotes(t, observer))
}

func TestSqlxSeesTheTransactionsPgxWork(t *testing.T) {
	tm, db, observer := newSqlx(t)
	ctx := context.Background()
	err := tm.Do(ctx, func(ctx context.Context) error {
		_, err := tm.Querier(ctx).Exec(ctx, `INSERT INTO notes VALUES (1, 'from pgx')`)
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, `INSERT INTO notes VALUES (2, 'from sqlx')`)
		require.NoError(t, err)

		var notes []note
		require.NoError(t, db.SelectContext(ctx, &notes, `SELECT id, body FROM notes ORDER BY id`))
		assert.Equal(t, []note{{1, "from pgx"}, {2, "from sqlx"}}, notes)

		var sqlxPid, pgxPid int
		var sqlxTx, pgxTx int64
		require.NoError(t, db.QueryRowxContext(ctx, `SELECT pg_backend_pid(), txid_current()`).Scan(&sqlxPid, &sqlxTx))
		require.NoError(t, tm.Querier(ctx).QueryRow(ctx, `SELECT pg_backend_pid(), txid_current()`).Scan(&pgxPid, &pgxTx))
		assert.Equal(t, pgxPid, sqlxPid, "same backend")
		assert.Equal(t, pgxTx, sqlxTx, "same transaction")
		return errors.New("roll back")
	})
	require.Error(t, err)
	assert.Zero(t, countNotes(t, observer))
}

func TestSqlxBeginTxInsideDoIsASavepoint(t *testing.T) {
	tm, db, observer := newSqlx(t)
	ctx := context.Background()
	err := tm.Do(ctx, func(ctx context.Context) error {
		_, err := db.ExecContext(ctx, `INSERT INTO notes VALUES (1, 'outer')`)
		require.NoError(t, err)

		tx, err := db.BeginTxx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `INSERT INTO notes VALUES (2, 'inner')`)
		require.NoError(t, err)
		require.NoError(t, tx.Rollback())

		var n note
		require.NoError(t, db.GetContext(ctx, &n, `SELECT id, body FROM notes`))
		assert.Equal(t, note{1, "outer"}, n, "the savepoint's rollback kept the outer work")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 1, countNotes(t, observer))
}
