package fault_test

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/internal/faultproxy"
	"github.com/uno-framework/uno/internal/logcapture"
	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// long runs the longer variants of the soak, bank and restart tests.
var long = flag.Bool("fault.long", false, "run the long variants of the fault-injection tests")

// testCtx returns a context that ends with the test (or after two minutes).
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// proxied is a pool (built by package pool, as the provider builds it) whose
// connections go through a fault proxy, and a Manager over it.
type proxied struct {
	proxy  *faultproxy.Proxy
	pooled *pool.Pool
	pool   *pgxpool.Pool
	tm     *txmanager.Manager
	log    *logcapture.Buffer
}

// newProxied starts a proxy in front of the package database and returns a pool of
// size conns through it, with a Manager whose policy is retry.
func newProxied(t *testing.T, conns int32, retry txmanager.RetryPolicy) *proxied {
	t.Helper()
	pc := pgtest.PoolConfig(t)
	target := pc.ConnConfig.Host + ":" + strconv.Itoa(int(pc.ConnConfig.Port))
	proxy, err := faultproxy.Start(target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	pc.ConnConfig.Host = proxy.Host()
	pc.ConnConfig.Port = proxy.Port()
	pc.ConnConfig.Fallbacks = nil
	pc.MaxConns = conns
	cfg := pool.DefaultConfig()
	cfg.HealthCheckInterval = 100 * time.Millisecond
	pooled, err := pool.New(testCtx(t), pc, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		pgtest.RequireNoAcquired(t, pooled.Pgx())
		pooled.Close()
	})
	logger, log := logcapture.NewText()
	tm, err := txmanager.New(pooled.Pgx(), txmanager.Config{Logger: logger, Retry: retry})
	require.NoError(t, err)
	return &proxied{proxy: proxy, pooled: pooled, pool: pooled.Pgx(), tm: tm, log: log}
}

var tableSeq atomic.Int64

// table creates a table (id, v text) on the package database and returns its name.
func table(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	name := fmt.Sprintf("fault_t%d", tableSeq.Add(1))
	_, err := pool.Exec(context.Background(),
		"create table "+name+" (id bigint generated always as identity primary key, v text not null)")
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "drop table if exists "+name) })
	return name
}

// count returns the number of rows of table whose v is v.
func count(t *testing.T, pool *pgxpool.Pool, table, v string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "select count(*) from "+table+" where v = $1", v).Scan(&n))
	return n
}
