package entdriver_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/examples/bank/ent"
	"github.com/uno-framework/uno/examples/bank/ent/account"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/entdriver"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var errAbort = errors.New("abort the use-case")

func TestCreateAndUpdateInsideDoVanishOnRollback(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	owner := "rollback-" + uuid.NewString()

	err := e.tm.Do(ctx, func(ctx context.Context) error {
		acct, err := e.client.Account.Create().SetOwner(owner).SetBalance(100).Save(ctx)
		if err != nil {
			return err
		}
		acct, err = e.client.Account.UpdateOneID(acct.ID).AddBalance(-30).Save(ctx)
		if err != nil {
			return err
		}
		assert.EqualValues(t, 70, acct.Balance)
		// Visible inside the transaction, invisible outside.
		n, err := e.client.Account.Query().Where(account.Owner(owner)).Count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		assert.Zero(t, e.count(t, `SELECT count(*) FROM accounts WHERE owner = $1`, owner))
		return errAbort
	})
	require.ErrorIs(t, err, errAbort)
	assert.Zero(t, e.count(t, `SELECT count(*) FROM accounts WHERE owner = $1`, owner), "the rolled-back account must not exist")
	assert.Zero(t, e.pool.Stat().AcquiredConns())

	// The same use-case committed leaves the account with its updated balance.
	var id int64
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		acct, err := e.client.Account.Create().SetOwner(owner).SetBalance(100).Save(ctx)
		if err != nil {
			return err
		}
		id = acct.ID
		_, err = e.client.Account.UpdateOneID(acct.ID).AddBalance(-30).Save(ctx)
		return err
	}))
	assert.Equal(t, 1, e.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND balance = 70`, id))
}

// auditTrigger records, for every row inserted or updated in accounts and transfers,
// the backend and the top-level transaction that wrote it.
func auditTrigger(t *testing.T, e env) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE entdriver_audit (tbl text NOT NULL, op text NOT NULL, pid int NOT NULL, txid bigint NOT NULL)`,
		`CREATE FUNCTION entdriver_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO entdriver_audit VALUES (TG_TABLE_NAME, TG_OP, pg_backend_pid(), txid_current());
			RETURN NULL;
		END $$`,
		`CREATE TRIGGER entdriver_audit AFTER INSERT OR UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION entdriver_audit()`,
		`CREATE TRIGGER entdriver_audit AFTER INSERT OR UPDATE ON transfers FOR EACH ROW EXECUTE FUNCTION entdriver_audit()`,
	} {
		_, err := e.observer.Exec(ctx, q)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for _, q := range []string{
			`DROP TRIGGER IF EXISTS entdriver_audit ON accounts`,
			`DROP TRIGGER IF EXISTS entdriver_audit ON transfers`,
			`DROP FUNCTION IF EXISTS entdriver_audit()`,
			`DROP TABLE IF EXISTS entdriver_audit`,
		} {
			_, err := e.observer.Exec(context.Background(), q)
			assert.NoError(t, err)
		}
	})
}

// TestEntTransactionsJoinTheDoTransaction shows that ent's own transactions (UpdateOne,
// client.Tx) and a Create with edges open no second transaction inside Do: every row they write is written by the backend and the transaction Do
// began, and none is visible to other sessions before Do commits.
func TestEntTransactionsJoinTheDoTransaction(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)

	var from, to *ent.Account
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		var err error
		if from, err = e.client.Account.Create().SetOwner("ada").SetBalance(100).Save(ctx); err != nil {
			return err
		}
		to, err = e.client.Account.Create().SetOwner("bob").Save(ctx)
		return err
	}))

	auditTrigger(t, e)
	var pid int32
	var txid int64
	var created *ent.Transfer
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		if err := e.tm.Querier(ctx).QueryRow(ctx, `SELECT pg_backend_pid(), txid_current()`).Scan(&pid, &txid); err != nil {
			return err
		}
		// UpdateOne: ent runs it in a dialect.Tx of its own.
		if _, err := e.client.Account.UpdateOneID(from.ID).AddBalance(-10).Save(ctx); err != nil {
			return err
		}
		// A Create with edges (both stored in the new row's foreign keys).
		var err error
		if created, err = e.client.Transfer.Create().SetFrom(from).SetTo(to).SetAmount(1).Save(ctx); err != nil {
			return err
		}
		// client.Tx inside Do: a Nested scope of the same transaction.
		etx, err := e.client.Tx(ctx)
		if err != nil {
			return err
		}
		if _, err := etx.Account.UpdateOneID(to.ID).AddBalance(10).Save(ctx); err != nil {
			return errors.Join(err, etx.Rollback())
		}
		if err := etx.Commit(); err != nil {
			return err
		}
		assert.Zero(t, e.count(t, `SELECT count(*) FROM entdriver_audit`), "nothing may be visible before Do commits")
		return nil
	}))

	rows, err := e.observer.Query(ctx, `SELECT tbl, op, pid, txid FROM entdriver_audit ORDER BY tbl, op`)
	require.NoError(t, err)
	defer rows.Close()
	var seen []string
	for rows.Next() {
		var tbl, op string
		var rowPID int32
		var rowTxid int64
		require.NoError(t, rows.Scan(&tbl, &op, &rowPID, &rowTxid))
		seen = append(seen, tbl+" "+op)
		assert.Equal(t, pid, rowPID, "%s %s ran on another backend", op, tbl)
		assert.Equal(t, txid, rowTxid, "%s %s ran in another transaction", op, tbl)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"accounts UPDATE", "accounts UPDATE", "transfers INSERT"}, seen)
	assert.Equal(t, 1, e.count(t, `SELECT count(*) FROM transfers WHERE id = $1 AND from_account_id = $2 AND to_account_id = $3`,
		created.ID, from.ID, to.ID))
}

// TestEntRoundTrips counts round trips on the wire: an ent operation that opens a
// dialect.Tx inside Do costs what its statements alone cost in the same Do.
func TestEntRoundTrips(t *testing.T) {
	ctx := context.Background()
	cfg, counter := countingConfig(t)
	e := newEnv(t, cfg)
	rec := &recorder{Driver: e.drv}
	client := ent.NewClient(ent.Driver(rec))

	var from, to *ent.Account
	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		var err error
		if from, err = client.Account.Create().SetOwner("ada").SetBalance(1_000_000).Save(ctx); err != nil {
			return err
		}
		to, err = client.Account.Create().SetOwner("bob").Save(ctx)
		return err
	}))

	cases := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"UpdateOne", func(ctx context.Context) error {
			_, err := client.Account.UpdateOneID(from.ID).AddBalance(-1).Save(ctx)
			return err
		}},
		{"CreateWithEdges", func(ctx context.Context) error {
			_, err := client.Transfer.Create().SetFromID(from.ID).SetToID(to.ID).SetAmount(1).Save(ctx)
			return err
		}},
		{"UpdateOneInClientTx", func(ctx context.Context) error {
			etx, err := client.Tx(ctx)
			if err != nil {
				return err
			}
			if _, err := etx.Account.UpdateOneID(from.ID).AddBalance(-1).Save(ctx); err != nil {
				return errors.Join(err, etx.Rollback())
			}
			return etx.Commit()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inDo := func(ctx context.Context) error { return e.tm.Do(ctx, tc.op) }
			// Warm the connection's statement cache, then measure.
			require.NoError(t, inDo(ctx))
			rec.take()
			counter.reset()
			require.NoError(t, inDo(ctx))
			entTrips := counter.count()
			stmts, txs := rec.take()

			replayInDo := func(ctx context.Context) error {
				return e.tm.Do(ctx, func(ctx context.Context) error { return replay(ctx, e.tm.Querier(ctx), stmts) })
			}
			require.NoError(t, replayInDo(ctx))
			counter.reset()
			require.NoError(t, replayInDo(ctx))
			replayTrips := counter.count()

			require.NoError(t, replayWithBeginFunc(ctx, e.pool, stmts))
			counter.reset()
			require.NoError(t, replayWithBeginFunc(ctx, e.pool, stmts))
			beginFuncTrips := counter.count()

			// Outside Do, ent's dialect.Tx begins a transaction of its own.
			require.NoError(t, tc.op(ctx))
			counter.reset()
			require.NoError(t, tc.op(ctx))
			outsideTrips := counter.count()
			rec.take()

			t.Logf("%s: %d statements, %d ent transactions; round trips: in Do %d, same statements by hand in Do %d, "+
				"by hand with pgx.BeginFunc %d, ent outside Do %d",
				tc.name, len(stmts), txs, entTrips, replayTrips, beginFuncTrips, outsideTrips)
			assert.Equal(t, replayTrips, entTrips, "ent's transaction must cost no round trip beyond its statements")
			assert.Equal(t, len(stmts)+1, entTrips, "one round trip per statement (BEGIN and SAVEPOINT ride along), one for COMMIT")
			if txs > 0 {
				assert.Equal(t, len(stmts)+1, outsideTrips, "outside Do, BEGIN rides with the first statement")
			} else {
				assert.Equal(t, len(stmts), outsideTrips, "outside Do, statements without an ent transaction run on the pool")
			}
			assert.Zero(t, e.pool.Stat().AcquiredConns())
		})
	}
}

func TestOutsideDoRunsOnThePool(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	owner := "pool-" + uuid.NewString()

	acct, err := e.client.Account.Create().SetOwner(owner).SetBalance(5).Save(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, e.count(t, `SELECT count(*) FROM accounts WHERE owner = $1`, owner), "committed at once")

	got, err := e.client.Account.Query().Where(account.Owner(owner)).Only(ctx)
	require.NoError(t, err)
	assert.Equal(t, acct.ID, got.ID)
	assert.EqualValues(t, 5, got.Balance)
	assert.WithinDuration(t, acct.CreatedAt, got.CreatedAt, time.Millisecond)

	// UpdateOne outside Do: ent's dialect.Tx begins and commits a transaction.
	_, err = e.client.Account.UpdateOneID(acct.ID).AddBalance(7).Save(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, e.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND balance = 12`, acct.ID))

	n, err := e.client.Account.Delete().Where(account.Owner(owner)).Exec(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "Delete reports the rows affected")
	assert.Zero(t, e.pool.Stat().AcquiredConns(), "every connection must be back in the pool")
}

// TestFailedEntOperationRollsBackOnlyItsSavepoint: inside Do, an ent operation that
// fails in the database rolls back its own scope; the transaction goes on.
func TestFailedEntOperationRollsBackOnlyItsSavepoint(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	owner := "savepoint-" + uuid.NewString()

	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		acct, err := e.client.Account.Create().SetOwner(owner).SetBalance(10).Save(ctx)
		if err != nil {
			return err
		}
		// The CHECK constraint rejects a negative balance (AddBalance bypasses the
		// generated validator).
		_, err = e.client.Account.UpdateOneID(acct.ID).AddBalance(-11).Save(ctx)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "want the check violation, got %v", err)
		assert.Equal(t, "accounts_balance_non_negative", pgErr.ConstraintName)

		// Not found: ent rolls back its dialect.Tx too.
		_, err = e.client.Account.UpdateOneID(-1).AddBalance(1).Save(ctx)
		require.True(t, ent.IsNotFound(err), "want not found, got %v", err)

		// The transaction is still usable.
		_, err = e.client.Account.UpdateOneID(acct.ID).AddBalance(5).Save(ctx)
		return err
	}))
	assert.Equal(t, 1, e.count(t, `SELECT count(*) FROM accounts WHERE owner = $1 AND balance = 15`, owner))
}

func TestClientTxInsideDoIsANestedScope(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	owner := "clienttx-" + uuid.NewString()

	require.NoError(t, e.tm.Do(ctx, func(ctx context.Context) error {
		if _, err := e.client.Account.Create().SetOwner(owner).SetBalance(1).Save(ctx); err != nil {
			return err
		}
		kept, err := e.client.Tx(ctx)
		if err != nil {
			return err
		}
		if _, err := kept.Account.Create().SetOwner(owner).SetBalance(2).Save(ctx); err != nil {
			return err
		}
		if err := kept.Commit(); err != nil {
			return err
		}
		dropped, err := e.client.Tx(ctx)
		if err != nil {
			return err
		}
		if _, err := dropped.Account.Create().SetOwner(owner).SetBalance(3).Save(ctx); err != nil {
			return err
		}
		return dropped.Rollback()
	}))
	rows, err := e.observer.Query(ctx, `SELECT balance FROM accounts WHERE owner = $1 ORDER BY balance`, owner)
	require.NoError(t, err)
	var balances []int64
	for rows.Next() {
		var b int64
		require.NoError(t, rows.Scan(&b))
		balances = append(balances, b)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []int64{1, 2}, balances, "the committed ent Tx is kept, the rolled-back one is dropped")
}

func TestBeginTxAppliesOptionsToANewTransaction(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)

	tx, err := e.drv.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true})
	require.NoError(t, err)
	var rows entsql.Rows
	require.NoError(t, tx.Query(ctx, `SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')`, []any{}, &rows))
	require.True(t, rows.Next())
	var iso, ro string
	require.NoError(t, rows.Scan(&iso, &ro))
	require.NoError(t, rows.Close())
	assert.Equal(t, "serializable", iso)
	assert.Equal(t, "on", ro)
	err = tx.Exec(ctx, `INSERT INTO accounts (owner, balance, created_at, updated_at) VALUES ('ro', 0, now(), now())`, []any{}, nil)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want read_only_sql_transaction, got %v", err)
	assert.Equal(t, "25006", pgErr.Code)
	require.NoError(t, tx.Rollback())
	require.ErrorIs(t, tx.Commit(), txmanager.ErrTxDone)
	require.ErrorIs(t, tx.Exec(ctx, `SELECT 1`, []any{}, nil), txmanager.ErrTxDone)

	// ent's Client.BeginTx goes through the same path.
	etx, err := e.client.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	require.NoError(t, err)
	_, err = etx.Account.Create().SetOwner("begintx").Save(ctx)
	require.NoError(t, err)
	require.NoError(t, etx.Rollback())

	_, err = e.drv.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelLinearizable})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not supported by PostgreSQL")

	// Inside Do, a different isolation level cannot apply to the running transaction.
	err = e.tm.Do(ctx, func(ctx context.Context) error {
		_, err := e.client.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
		return err
	}, txmanager.WithIsolation(pgx.ReadCommitted))
	require.ErrorIs(t, err, txmanager.ErrIncompatibleTransaction)
	assert.Zero(t, e.pool.Stat().AcquiredConns())
}

func TestColumnTypesErrorIsClear(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	var rows entsql.Rows
	require.NoError(t, e.drv.Query(ctx, `SELECT 1 AS one, 'x' AS two`, []any{}, &rows))
	defer rows.Close()

	cols, err := rows.Columns()
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two"}, cols)

	types, err := rows.ColumnTypes()
	assert.Nil(t, types)
	require.ErrorIs(t, err, entdriver.ErrColumnTypes)
	assert.Contains(t, err.Error(), "*sql.ColumnType")
	assert.Contains(t, err.Error(), "database/sql view of the pool")
	assert.False(t, rows.NextResultSet())
}

// TestScansWhatEntScansInto checks the scan destinations ent's generated code uses.
func TestScansWhatEntScansInto(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	id := uuid.New()
	var rows entsql.Rows
	require.NoError(t, e.drv.Query(ctx, `SELECT 'a'::text, 42::bigint, 7::int, now(), true, 1.5::float8,
		'{"k":1}'::jsonb, '\x0102'::bytea, NULL::text, NULL::timestamptz, $1::uuid, 'v'::varchar, now()`,
		[]any{id}, &rows))
	defer rows.Close()
	require.True(t, rows.Next())
	var (
		s      sql.NullString
		i64    sql.NullInt64
		i32    sql.NullInt64
		ts     sql.NullTime
		b      sql.NullBool
		f      sql.NullFloat64
		js     []byte
		raw    []byte
		null   sql.NullString
		nullTS sql.NullTime
		u      uuid.UUID
		any1   any
		tm     time.Time
	)
	require.NoError(t, rows.Scan(&s, &i64, &i32, &ts, &b, &f, &js, &raw, &null, &nullTS, &u, &any1, &tm))
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	assert.Equal(t, sql.NullString{String: "a", Valid: true}, s)
	assert.Equal(t, sql.NullInt64{Int64: 42, Valid: true}, i64)
	assert.Equal(t, sql.NullInt64{Int64: 7, Valid: true}, i32)
	assert.True(t, ts.Valid)
	assert.Equal(t, sql.NullBool{Bool: true, Valid: true}, b)
	assert.Equal(t, sql.NullFloat64{Float64: 1.5, Valid: true}, f)
	assert.JSONEq(t, `{"k":1}`, string(js))
	assert.Equal(t, []byte{1, 2}, raw)
	assert.False(t, null.Valid)
	assert.False(t, nullTS.Valid)
	assert.Equal(t, id, u)
	assert.Equal(t, "v", any1)
	assert.False(t, tm.IsZero())

	// A column ent does not know is scanned into any (ColumnTypes is not needed).
	owner := "modify-" + uuid.NewString()
	_, err := e.client.Account.Create().SetOwner(owner).SetBalance(3).Save(ctx)
	require.NoError(t, err)
	accts, err := e.client.Account.Query().Where(account.Owner(owner)).
		Modify(func(s *entsql.Selector) { s.AppendSelectExprAs(entsql.Expr("balance * 2"), "doubled") }).All(ctx)
	require.NoError(t, err)
	require.Len(t, accts, 1)
	doubled, err := accts[0].Value("doubled")
	require.NoError(t, err)
	assert.EqualValues(t, 6, doubled)
}

// TestScansIntoDriverValue: ent scans some values into *driver.Value (database-generated
// string ids, the ids of an update that spans tables, sql.ScanValue), which pgx alone
// does not accept.
func TestScansIntoDriverValue(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	var rows entsql.Rows
	require.NoError(t, e.drv.Query(ctx, `SELECT 42::bigint, 'relay-1'::text, 7::int`, []any{}, &rows))
	defer rows.Close()
	require.True(t, rows.Next())
	var id, name driver.Value
	var n int
	require.NoError(t, rows.Scan(&id, &name, &n))
	assert.Equal(t, int64(42), id)
	assert.Equal(t, "relay-1", name)
	assert.Equal(t, 7, n)
	require.NoError(t, rows.Close())

}

func TestExecResult(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	var res sql.Result
	require.NoError(t, e.drv.Exec(ctx, `UPDATE accounts SET balance = balance WHERE false`, []any{}, &res))
	n, err := res.RowsAffected()
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = res.LastInsertId()
	require.ErrorIs(t, err, entdriver.ErrLastInsertID)

	require.NoError(t, e.drv.Exec(ctx, `SELECT 1`, nil, nil), "nil arguments and no result are accepted")

	var wrong int
	err = e.drv.Exec(ctx, `SELECT 1`, []any{}, &wrong)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "*int")
	err = e.drv.Exec(ctx, `SELECT 1`, "not a slice", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "want []any")
	err = e.drv.Query(ctx, `SELECT 1`, []any{}, &wrong)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dialect/sql.Rows")
}

func TestDriverWithoutManager(t *testing.T) {
	ctx := context.Background()
	drv := entdriver.New(nil)
	assert.Equal(t, "postgres", drv.Dialect())
	require.ErrorIs(t, drv.Exec(ctx, "SELECT 1", []any{}, nil), entdriver.ErrNoManager)
	var rows entsql.Rows
	require.ErrorIs(t, drv.Query(ctx, "SELECT 1", []any{}, &rows), entdriver.ErrNoManager)
	_, err := drv.Tx(ctx)
	require.ErrorIs(t, err, entdriver.ErrNoManager)
	require.NoError(t, drv.Close())
}

func TestCloseLeavesThePoolOpen(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	require.NoError(t, e.client.Close())
	require.NoError(t, e.pool.Ping(ctx), "closing the ent client must not close the pool")
	_, err := e.client.Account.Query().Count(ctx)
	require.NoError(t, err, "the driver still works: the pool belongs to the provider")
}
