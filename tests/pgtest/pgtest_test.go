package pgtest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestPackageDatabaseIsAFreshTemplateClone(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.Pool(t)

	var db, marker string
	var tables int
	require.NoError(t, pool.QueryRow(ctx, `SELECT current_database(),
		coalesce(obj_description('public'::regnamespace, 'pg_namespace'), ''),
		(SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&db, &marker, &tables))

	assert.NotContains(t, []string{"test", "postgres"}, db, "pool is on a shared database, want the package's own")
	assert.True(t, strings.HasPrefix(db, "uno_test_"), db)
	assert.True(t, strings.HasSuffix(db, "_pgtest"), "the name ends with the package: %s", db)
	assert.Equal(t, "uno pgtest template uno_template_v1", marker, "cloned from the harness's template")
	assert.Zero(t, tables, "a fresh database has no tables")

	conn := pgtest.Conn(t)
	var connDB string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&connDB))
	assert.Equal(t, db, connDB)
	cfg, err := pgx.ParseConfig(pgtest.ConnString(t))
	require.NoError(t, err)
	assert.Equal(t, db, cfg.Database)
}

func TestConnIsClosedAtCleanup(t *testing.T) {
	var conn *pgx.Conn
	t.Run("uses", func(t *testing.T) {
		conn = pgtest.Conn(t)
		require.NoError(t, conn.Ping(t.Context()))
	})
	assert.True(t, conn.IsClosed())
}

// recorder is a testing.TB that records failures and cleanups instead of acting on them.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// run runs f as a test body on its own goroutine, as Fatalf needs.
func (r *recorder) run(f func(tb testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

func TestRequireNoAcquired(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.Pool(t)
	c, err := pool.Acquire(ctx)
	require.NoError(t, err)

	held := &recorder{TB: t}
	held.run(func(tb testing.TB) { pgtest.RequireNoAcquired(tb, pool) })
	c.Release()
	released := &recorder{TB: t}
	released.run(func(tb testing.TB) { pgtest.RequireNoAcquired(tb, pool) })

	require.Len(t, held.failures, 1)
	assert.Contains(t, held.failures[0], "1 connections still acquired")
	assert.Empty(t, released.failures)
}

func TestNewPoolFailsTestThatKeepsAConnection(t *testing.T) {
	rec := &recorder{TB: t}
	pool := pgtest.NewPool(rec, pgtest.PoolConfig(t))
	c, err := pool.Acquire(t.Context())
	require.NoError(t, err)
	defer c.Release() // after the pool's cleanup has looked

	rec.runCleanups()

	require.Len(t, rec.failures, 1)
	assert.Contains(t, rec.failures[0], "1 connections still acquired at the end of the test")
}

func TestLocalServerIsClosedAtCleanup(t *testing.T) {
	var srv *pgserver.Server
	t.Run("uses", func(t *testing.T) {
		srv = pgtest.LocalServer(t)
		assert.Equal(t, pgserver.SourceLocal, srv.Source)
		conn, err := pgx.Connect(t.Context(), srv.URL)
		require.NoError(t, err)
		require.NoError(t, conn.Close(t.Context()))
	})
	if srv == nil {
		t.Skip("no local server (binaries missing)")
	}
	_, err := pgx.Connect(context.Background(), srv.URL)
	assert.Error(t, err, "the server is gone after the test that started it")
}
