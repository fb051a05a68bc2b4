package txmanager_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

// replicaEnv is an env whose primary pool has one connection, and a replica Manager
// made from its Manager over a second pool on the same database (a stand-in for a
// standby's: no standby is needed to check what runs where).
type replicaEnv struct {
	*env
	rpool *pgxpool.Pool
	r     *txmanager.Manager
}

func newReplicaEnv(t *testing.T) *replicaEnv {
	t.Helper()
	e := newEnv(t, func(c *pgxpool.Config) { c.MaxConns = 1 })
	rc := pgtest.PoolConfig(t)
	rc.MaxConns = 2
	rpool := pgtest.NewPool(t, rc)
	r, err := e.tm.Replica(rpool)
	require.NoError(t, err)
	return &replicaEnv{env: e, rpool: rpool, r: r}
}

// onReplica asserts that ctx's statements through the primary's Manager run in the
// replica Manager's read-only transaction, on the replica pool's connection.
func (re *replicaEnv) onReplica(t *testing.T, ctx context.Context) {
	t.Helper()
	var ro string
	require.NoError(t, re.tm.QueryRow(ctx, "show transaction_read_only").Scan(&ro))
	assert.Equal(t, "on", ro, "the statement ran in the read-only transaction")
	assert.Equal(t, re.pid(t, ctx), pidOf(t, ctx, re.r.Querier(ctx)), "tm.Querier is the replica's transaction")
	assert.Zero(t, re.pool.Stat().AcquiredConns(), "nothing runs on the primary's pool")
	assert.Equal(t, int32(1), re.rpool.Stat().AcquiredConns(), "the replica pool's connection runs it")
}

func pidOf(t *testing.T, ctx context.Context, q txmanager.Querier) int32 {
	t.Helper()
	var pid int32
	require.NoError(t, q.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid))
	return pid
}

func TestReplicaManagersTransactionIsThePrimaryManagers(t *testing.T) {
	re := newReplicaEnv(t)
	ctx := testCtx(t)

	require.NoError(t, re.r.Do(ctx, func(ctx context.Context) error {
		re.onReplica(t, ctx)
		assert.Same(t, re.r.Querier(ctx), re.tm.Querier(ctx))
		// Required joins the replica's transaction, Nested opens a savepoint in it.
		require.NoError(t, re.tm.Do(ctx, func(ctx context.Context) error {
			re.onReplica(t, ctx)
			return nil
		}))
		require.NoError(t, re.tm.Do(ctx, func(ctx context.Context) error {
			re.onReplica(t, ctx)
			return nil
		}, txmanager.Nested()))
		tx, txCtx, err := re.tm.Begin(ctx)
		require.NoError(t, err)
		re.onReplica(t, txCtx)
		return tx.Commit(txCtx)
	}))

	// The replica's transaction joins one of the primary's as the primary's own scopes do.
	tbl := re.table(t)
	require.NoError(t, re.tm.Do(ctx, func(ctx context.Context) error {
		re.mustInsert(t, ctx, tbl, "primary")
		return re.r.Do(ctx, func(ctx context.Context) error {
			var n int
			require.NoError(t, re.r.Querier(ctx).QueryRow(ctx, "select count(*) from "+tbl).Scan(&n))
			assert.Equal(t, 1, n, "it sees the primary transaction's uncommitted row")
			return nil
		})
	}))
	re.requireReleased(t)
	pgtest.RequireNoAcquired(t, re.rpool)
}

func TestReplicaManagersTransactionsRejectWrites(t *testing.T) {
	re := newReplicaEnv(t)
	ctx := testCtx(t)
	tbl := re.table(t)

	var pgErr *pgconn.PgError
	err := re.r.Do(ctx, func(ctx context.Context) error {
		_, err := re.tm.Exec(ctx, "insert into "+tbl+" (v) values ('replica')")
		return err
	})
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "25006", pgErr.Code, "read-only transaction")

	// Also through Begin, and whatever the options say.
	tx, txCtx, err := re.r.Begin(ctx, txmanager.WithIsolation(pgx.RepeatableRead))
	require.NoError(t, err)
	err = re.insert(txCtx, tbl, "begin")
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "25006", pgErr.Code)
	require.NoError(t, tx.Rollback(txCtx))

	assert.Equal(t, []string{}, re.rows(t, tbl), "no write reached the primary")
	re.requireReleased(t)
	pgtest.RequireNoAcquired(t, re.rpool)
}

func TestRequiresNewAndNotSupportedInAReplicaTransactionRunOnThePrimary(t *testing.T) {
	re := newReplicaEnv(t) // the primary's pool has one connection
	ctx := testCtx(t)
	tbl := re.table(t)

	require.NoError(t, re.r.Do(ctx, func(ctx context.Context) error {
		replicaPID := re.pid(t, ctx)
		// The replica's connection is not the primary pool's: a transaction of the
		// primary gets its one connection.
		require.NoError(t, re.tm.Do(ctx, func(ctx context.Context) error {
			var ro string
			require.NoError(t, re.tm.QueryRow(ctx, "show transaction_read_only").Scan(&ro))
			assert.Equal(t, "off", ro)
			assert.NotEqual(t, replicaPID, re.pid(t, ctx))
			assert.Equal(t, int32(1), re.pool.Stat().AcquiredConns(), "it runs on the primary's pool")
			return re.insert(ctx, tbl, "requires new")
		}, txmanager.RequiresNew()))
		require.NoError(t, re.tm.Do(ctx, func(ctx context.Context) error {
			assert.False(t, txmanager.InTransaction(ctx))
			assert.Same(t, re.pool, re.tm.Querier(ctx), "it runs on the primary's pool")
			return re.insert(ctx, tbl, "not supported")
		}, txmanager.NotSupported()))
		// The read goes on in the replica's transaction.
		re.onReplica(t, ctx)
		return nil
	}))
	assert.Equal(t, []string{"requires new", "not supported"}, re.rows(t, tbl), "both committed on the primary")
	re.requireReleased(t)
	pgtest.RequireNoAcquired(t, re.rpool)
}

func TestReplicaNeedsAPoolOfItsOwn(t *testing.T) {
	re := newReplicaEnv(t)
	_, err := re.tm.Replica(nil)
	require.Error(t, err)
	_, err = re.tm.Replica(re.pool)
	require.Error(t, err)
	_, err = re.r.Replica(re.pool)
	require.Error(t, err, "the primary's pool, through a replica's Manager")
	_, err = re.r.Replica(re.rpool)
	require.Error(t, err)
}
