package sqldriver_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/sqldriver"
)

type env struct {
	tm       *txmanager.Manager
	db       *sql.DB
	observer *pgxpool.Pool
}

// newEnv returns a manager, the *sql.DB over it and an observer pool, with an empty
// table named table (v int).
func newEnv(t *testing.T, table string) env {
	t.Helper()
	pool := pgtest.Pool(t)
	observer := pgtest.Pool(t)
	_, err := observer.Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`; CREATE TABLE `+table+` (v int)`)
	require.NoError(t, err)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	db := sqldriver.Open(tm)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return env{tm: tm, db: db, observer: observer}
}

// count returns what other sessions see in table.
func (e env) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, e.observer.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

var errBoom = errors.New("boom")

func TestWritesRollBackWithDo(t *testing.T) {
	e := newEnv(t, "sql_rollback")
	ctx := context.Background()
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		_, err := e.db.ExecContext(ctx, `INSERT INTO sql_rollback VALUES ($1)`, 1)
		require.NoError(t, err)
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	assert.Zero(t, e.count(t, "sql_rollback"), "the database/sql write rolled back with the transaction")
}

func TestWritesCommitWithDo(t *testing.T) {
	e := newEnv(t, "sql_commit")
	ctx := context.Background()
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		if _, err := e.db.ExecContext(ctx, `INSERT INTO sql_commit VALUES ($1), ($2)`, 1, 2); err != nil {
			return err
		}
		assert.Zero(t, e.count(t, "sql_commit"), "not visible outside before COMMIT")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 2, e.count(t, "sql_commit"))
}

func TestDatabaseSQLAndPgxShareTheTransaction(t *testing.T) {
	e := newEnv(t, "sql_shared")
	ctx := context.Background()
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		_, err := e.db.ExecContext(ctx, `INSERT INTO sql_shared VALUES (1)`)
		require.NoError(t, err)
		var viaSQL, viaPgx struct {
			pid  int
			txid int64
			rows int
		}
		require.NoError(t, e.db.QueryRowContext(ctx, `SELECT pg_backend_pid(), txid_current(), (SELECT count(*) FROM sql_shared)`).
			Scan(&viaSQL.pid, &viaSQL.txid, &viaSQL.rows))
		require.NoError(t, e.tm.Querier(ctx).QueryRow(ctx, `SELECT pg_backend_pid(), txid_current(), (SELECT count(*) FROM sql_shared)`).
			Scan(&viaPgx.pid, &viaPgx.txid, &viaPgx.rows))
		assert.Equal(t, viaPgx, viaSQL, "same backend, same transaction, same rows")
		assert.Equal(t, 1, viaPgx.rows, "pgx sees the database/sql write")
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	assert.Zero(t, e.count(t, "sql_shared"))
}

func TestBeginTxInsideDoIsASavepoint(t *testing.T) {
	e := newEnv(t, "sql_nested")
	ctx := context.Background()
	err := e.tm.Do(ctx, func(ctx context.Context) error {
		_, err := e.db.ExecContext(ctx, `INSERT INTO sql_nested VALUES (1)`)
		require.NoError(t, err)

		tx, err := e.db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `INSERT INTO sql_nested VALUES (2)`)
		require.NoError(t, err)
		var inner int64
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT txid_current()`).Scan(&inner))
		require.NoError(t, tx.Rollback(), "rolls back to the savepoint")

		var outer int64
		require.NoError(t, e.db.QueryRowContext(ctx, `SELECT txid_current()`).Scan(&outer))
		assert.Equal(t, outer, inner, "the nested scope ran in the same transaction")

		tx, err = e.db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `INSERT INTO sql_nested VALUES (3)`)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(), "releases the savepoint")

		var vs []int
		rows, err := e.db.QueryContext(ctx, `SELECT v FROM sql_nested ORDER BY v`)
		require.NoError(t, err)
		for rows.Next() {
			var v int
			require.NoError(t, rows.Scan(&v))
			vs = append(vs, v)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		assert.Equal(t, []int{1, 3}, vs, "the rolled-back scope's row is gone, the outer work stays")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 2, e.count(t, "sql_nested"))
}

func TestBeginTxOutsideDoBeginsATransaction(t *testing.T) {
	e := newEnv(t, "sql_top")
	ctx := context.Background()

	tx, err := e.db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `INSERT INTO sql_top VALUES (1)`)
	require.NoError(t, err)
	assert.Zero(t, e.count(t, "sql_top"))
	require.NoError(t, tx.Rollback())
	assert.Zero(t, e.count(t, "sql_top"))

	tx, err = e.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	require.NoError(t, err)
	var level string
	require.NoError(t, tx.QueryRowContext(ctx, `SHOW transaction_isolation`).Scan(&level))
	assert.Equal(t, "serializable", level)
	_, err = tx.ExecContext(ctx, `INSERT INTO sql_top VALUES (2)`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	assert.Equal(t, 1, e.count(t, "sql_top"))

	// Outside a transaction a statement runs on the pool and commits by itself.
	_, err = e.db.ExecContext(ctx, `INSERT INTO sql_top VALUES (3)`)
	require.NoError(t, err)
	assert.Equal(t, 2, e.count(t, "sql_top"))
	require.NoError(t, e.db.PingContext(ctx))
}

func TestColumnsDecodeAsDatabaseSQLExpects(t *testing.T) {
	e := newEnv(t, "sql_types")
	ctx := context.Background()
	var (
		i       int
		i64     int64
		f       float64
		s       string
		b       bool
		raw     []byte
		js      []byte
		ts      time.Time
		num     string
		id      string
		null    sql.NullString
		arr     string
		missing *int
	)
	err := e.db.QueryRowContext(ctx, `SELECT 1::int4, 2::int8, 1.5::float8, 'text', true, '\x0102'::bytea, '{"a": 1}'::jsonb,
		'2024-01-02 03:04:05+00'::timestamptz, 12.50::numeric, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, NULL::text,
		ARRAY[1,2], NULL::int`).
		Scan(&i, &i64, &f, &s, &b, &raw, &js, &ts, &num, &id, &null, &arr, &missing)
	require.NoError(t, err)
	assert.Equal(t, 1, i)
	assert.Equal(t, int64(2), i64)
	assert.Equal(t, 1.5, f)
	assert.Equal(t, "text", s)
	assert.True(t, b)
	assert.Equal(t, []byte{1, 2}, raw)
	assert.JSONEq(t, `{"a": 1}`, string(js))
	assert.True(t, ts.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)))
	assert.Equal(t, "12.50", num)
	assert.Equal(t, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", id)
	assert.False(t, null.Valid)
	assert.Equal(t, "{1,2}", arr)
	assert.Nil(t, missing)

	res, err := e.db.ExecContext(ctx, `INSERT INTO sql_types VALUES (1), (2)`)
	require.NoError(t, err)
	n, err := res.RowsAffected()
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)
	_, err = res.LastInsertId()
	assert.ErrorIs(t, err, sqldriver.ErrLastInsertID)
}
