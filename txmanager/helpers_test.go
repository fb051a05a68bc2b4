package txmanager_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testCtx returns a context that ends with the test (or after a minute).
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a pool, a Manager over it and the Manager's log.
type env struct {
	pool *pgxpool.Pool
	tm   *txmanager.Manager
	log  *syncBuffer
}

// newEnv returns a pool on the package database and a Manager over it. cfgs adjust the
// pool's configuration.
func newEnv(t *testing.T, cfgs ...func(*pgxpool.Config)) *env {
	t.Helper()
	pc := pgtest.PoolConfig(t)
	pc.MaxConns = 4
	for _, f := range cfgs {
		f(pc)
	}
	pool := pgtest.NewPool(t, pc)
	log := &syncBuffer{}
	tm, err := txmanager.New(pool, txmanager.Config{
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Retry:  txmanager.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 20 * time.Millisecond},
	})
	require.NoError(t, err)
	return &env{pool: pool, tm: tm, log: log}
}

var tableSeq atomic.Int64

// table creates a table (id, v text) dropped at the end of the test, and returns its name.
func (e *env) table(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("tm_t%d", tableSeq.Add(1))
	_, err := e.pool.Exec(context.Background(),
		"create table "+name+" (id bigint generated always as identity primary key, v text not null)")
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = e.pool.Exec(context.Background(), "drop table if exists "+name) })
	return name
}

// insert inserts v into table through ctx's transaction (or the pool).
func (e *env) insert(ctx context.Context, table, v string) error {
	_, err := e.tm.Querier(ctx).Exec(ctx, "insert into "+table+" (v) values ($1)", v)
	return err
}

// mustInsert is insert for code that must not fail.
func (e *env) mustInsert(t *testing.T, ctx context.Context, table, v string) {
	t.Helper()
	require.NoError(t, e.insert(ctx, table, v))
}

// rows returns the committed values of table in insertion order.
func (e *env) rows(t *testing.T, table string) []string {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), "select v from "+table+" order by id")
	require.NoError(t, err)
	defer rows.Close()
	var vs []string
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		vs = append(vs, v)
	}
	require.NoError(t, rows.Err())
	if vs == nil {
		vs = []string{}
	}
	return vs
}

// pid returns the backend process id of the connection ctx's statements run on.
func (e *env) pid(t *testing.T, ctx context.Context) int32 {
	t.Helper()
	var pid int32
	require.NoError(t, e.tm.Querier(ctx).QueryRow(ctx, "select pg_backend_pid()").Scan(&pid))
	return pid
}

// requireReleased fails unless every connection is back in the pool.
func (e *env) requireReleased(t *testing.T) {
	t.Helper()
	pgtest.RequireNoAcquired(t, e.pool)
}
