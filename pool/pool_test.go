package pool_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/internal/logcapture"
	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newLogger() (*slog.Logger, *logcapture.Buffer) { return logcapture.NewText() }

// states records the transitions reported to OnStateChange.
type states chan pool.State

func (s states) callback(st pool.State) { s <- st }

// next waits for the next reported transition.
func (s states) next(t *testing.T) pool.State {
	t.Helper()
	select {
	case st := <-s:
		return st
	case <-time.After(20 * time.Second):
		t.Fatal("no state change reported")
		return pool.StateUnknown
	}
}

// waitFor waits until want is reported, failing if it never is.
func (s states) waitFor(t *testing.T, want pool.State) {
	t.Helper()
	for {
		if s.next(t) == want {
			return
		}
	}
}

func fastBackOff() backoff.BackOff { return backoff.NewConstantBackOff(20 * time.Millisecond) }

// newPool builds a pool on the package database; at cleanup it checks that no
// connection is still acquired, then closes the pool.
func newPool(t *testing.T, pcfg *pgxpool.Config, cfg pool.Config) *pool.Pool {
	t.Helper()
	if pcfg == nil {
		pcfg = pgtest.PoolConfig(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pool.New(ctx, pcfg, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		pgtest.RequireNoAcquired(t, p.Pgx())
		p.Close()
	})
	return p
}

func TestAcquireHandsOutWorkingConnections(t *testing.T) {
	ctx := context.Background()
	p := newPool(t, nil, pool.DefaultConfig())

	c, err := p.Acquire(ctx)
	require.NoError(t, err)
	var one int
	require.NoError(t, c.QueryRow(ctx, "SELECT 1").Scan(&one))
	c.Release()
	assert.Equal(t, 1, one)
	require.NoError(t, p.Ping(ctx))

	st := p.Stats()
	assert.Equal(t, pool.StateHealthy, st.State)
	assert.Equal(t, pool.StateHealthy, p.State())
	assert.GreaterOrEqual(t, st.AcquireCount, int64(2))
	assert.GreaterOrEqual(t, st.NewConns, int64(1))
	assert.Zero(t, st.AcquiredConns)
	assert.Zero(t, st.AcquireTimeouts)
}

func TestExhaustedPoolTimesOut(t *testing.T) {
	ctx := context.Background()
	logger, logs := newLogger()
	pcfg := pgtest.PoolConfig(t)
	pcfg.MaxConns = 2
	pcfg.MinConns = 2 // opened in the background: connecting may take longer than the timeout on a loaded machine
	cfg := pool.DefaultConfig()
	cfg.AcquireTimeout = 200 * time.Millisecond
	cfg.Logger = logger
	p := newPool(t, pcfg, cfg)
	require.Eventually(t, func() bool { return p.Stats().IdleConns == 2 }, 30*time.Second, 10*time.Millisecond)
	before := p.Stats().AcquireTimeouts // New's own first connection may have timed out

	held := make([]*pgxpool.Conn, 0, 2)
	for range 2 {
		c, err := p.Acquire(ctx)
		require.NoError(t, err)
		held = append(held, c)
	}

	_, err := p.Acquire(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, pool.ErrAcquireTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var te *pool.AcquireTimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, int32(2), te.MaxConns)
	assert.Equal(t, int32(2), te.AcquiredConns)
	assert.Contains(t, err.Error(), "all 2 connections are in use")

	// The timeout applies to pgxpool's own methods too: no hang.
	_, err = p.Pgx().Exec(ctx, "SELECT 1")
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// The caller's context still rules: a cancelled one is not reported as a timeout.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = p.Acquire(cctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, pool.ErrAcquireTimeout)

	for _, c := range held {
		c.Release()
	}
	c, err := p.Acquire(ctx)
	require.NoError(t, err)
	c.Release()

	assert.Equal(t, int64(2), p.Stats().AcquireTimeouts-before, "%s", logs.String())
	assert.Contains(t, logs.String(), "pool: acquire timed out")
}

// terminate kills every backend with the given application_name from a separate
// connection and waits until they are gone.
func terminate(t *testing.T, appName string) int {
	t.Helper()
	ctx := context.Background()
	admin := pgtest.Conn(t)
	var killed int
	require.NoError(t, admin.QueryRow(ctx,
		"SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
		appName).Scan(&killed))
	require.Eventually(t, func() bool {
		var left int
		err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", appName).Scan(&left)
		return err == nil && left == 0
	}, 10*time.Second, 10*time.Millisecond)
	return killed
}

func TestTerminatedConnectionsAreReplacedWithoutAReset(t *testing.T) {
	ctx := context.Background()
	logger, logs := newLogger()
	appName := fmt.Sprintf("uno-pool-test-%d", time.Now().UnixNano())
	pcfg := pgtest.PoolConfig(t)
	pcfg.MaxConns = 3
	pcfg.ConnConfig.RuntimeParams["application_name"] = appName
	ch := make(states, 100)
	cfg := pool.DefaultConfig()
	cfg.IdleValidationThreshold = 0 // validate every hand-out: the test cannot wait for idleness
	cfg.HealthCheckInterval = time.Hour
	cfg.OnStateChange = ch.callback
	cfg.Logger = logger
	cfg.Reconnect = fastBackOff
	p := newPool(t, pcfg, cfg)

	// Fill the pool with three connections, then return them.
	oldPIDs := map[uint32]bool{}
	conns := make([]*pgxpool.Conn, 0, 3)
	for range 3 {
		c, err := p.Acquire(ctx)
		require.NoError(t, err)
		oldPIDs[c.Conn().PgConn().PID()] = true
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}

	require.Equal(t, 3, terminate(t, appName))

	c, err := p.Acquire(ctx)
	require.NoError(t, err)
	var pid uint32
	require.NoError(t, c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	c.Release()
	assert.False(t, oldPIDs[pid], "the connection handed out must be a new one")

	// Killed backends are no outage: the monitor's probe reaches the server, so the
	// pool is neither reported unhealthy nor reset.
	require.Eventually(t, func() bool { return p.Stats().BrokenConnsDiscarded >= 1 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Ping(ctx))
	time.Sleep(100 * time.Millisecond) // let the monitor's probe run
	st := p.Stats()
	assert.Equal(t, pool.StateHealthy, st.State)
	assert.Zero(t, st.Resets)
	assert.Zero(t, st.Reconnects)
	assert.NotContains(t, logs.String(), "pool: unhealthy")
	select {
	case s := <-ch:
		t.Fatalf("state changed to %v", s)
	default:
	}
}

// connectCounter is a user's tracer that counts connection attempts: the pool's own
// and the monitor's, which connects outside the pool with the user's tracer.
type connectCounter struct{ n atomic.Int64 }

func (c *connectCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (c *connectCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *connectCounter) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *connectCounter) TraceConnectEnd(context.Context, pgx.TraceConnectEndData) {}

func TestCancelledStatementOnABusyPoolCostsOnlyItsConnection(t *testing.T) {
	ctx := context.Background()
	logger, logs := newLogger()
	counter := &connectCounter{}
	pcfg := pgtest.PoolConfig(t)
	pcfg.MaxConns = 2
	pcfg.ConnConfig.Tracer = counter
	cfg := pool.DefaultConfig()
	cfg.HealthCheckInterval = time.Hour // only the discarded connection wakes the monitor
	cfg.Logger = logger
	p := newPool(t, pcfg, cfg)

	// Every connection is busy: one runs a statement whose context is cancelled, the
	// other stays acquired until the monitor has seen the discarded connection.
	cancelled, err := p.Acquire(ctx)
	require.NoError(t, err)
	busy, err := p.Acquire(ctx)
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = cancelled.Exec(sctx, "SELECT pg_sleep(30)")
	cancel()
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, cancelled.Conn().IsClosed(), "pgx closes the connection of a statement cancelled mid-flight")
	cancelled.Release()
	require.Eventually(t, func() bool { return p.Stats().BrokenConnsDiscarded == 1 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // the monitor, woken, finds no idle connection
	busy.Release()

	// The monitor opened no connection of its own (every connection attempt was the
	// pool's), and the pool was neither reported unhealthy nor reset.
	st := p.Stats()
	assert.Equal(t, st.NewConns, counter.n.Load(), "connections opened outside the pool")
	assert.Equal(t, pool.StateHealthy, st.State)
	assert.Zero(t, st.Resets)
	assert.NotContains(t, logs.String(), "pool: unhealthy")

	// The pool replaces the connection on demand.
	c1, err := p.Acquire(ctx)
	require.NoError(t, err)
	c2, err := p.Acquire(ctx)
	require.NoError(t, err)
	require.NoError(t, c1.Ping(ctx))
	require.NoError(t, c2.Ping(ctx))
	c1.Release()
	c2.Release()
}

func TestMonitorReportsOutageAndReconnects(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.LocalServer(t)
	pcfg, err := pgxpool.ParseConfig(srv.URL)
	require.NoError(t, err)
	pcfg.MaxConns = 2
	ch := make(states, 100)
	cfg := pool.DefaultConfig()
	cfg.HealthCheckInterval = 50 * time.Millisecond
	cfg.AcquireTimeout = time.Second
	cfg.OnStateChange = ch.callback
	cfg.Reconnect = fastBackOff
	p := newPool(t, pcfg, cfg)
	require.NoError(t, p.Ping(ctx))

	require.NoError(t, srv.Stop(ctx))
	ch.waitFor(t, pool.StateUnhealthy)
	assert.Equal(t, pool.StateUnhealthy, p.State())
	assert.NotEmpty(t, p.Stats().LastError)
	// While the server is down, acquiring fails instead of hanging.
	_, err = p.Acquire(ctx)
	require.Error(t, err)

	require.NoError(t, srv.Start(ctx))
	ch.waitFor(t, pool.StateHealthy)
	c, err := p.Acquire(ctx)
	require.NoError(t, err)
	_, err = c.Exec(ctx, "SELECT 1")
	c.Release()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, p.Stats().Reconnects, int64(1))
}

func TestNewRetriesThenGivesUpWhenNothingListens(t *testing.T) {
	port, err := pgserver.FreePort()
	require.NoError(t, err)
	pcfg, err := pgxpool.ParseConfig(fmt.Sprintf("postgres://postgres:s3cr3t-PA55@127.0.0.1:%d/postgres?sslmode=disable", port))
	require.NoError(t, err)
	logger, logs := newLogger()
	cfg := pool.DefaultConfig()
	cfg.Logger = logger
	cfg.Reconnect = fastBackOff
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()

	p, err := pool.New(ctx, pcfg, cfg)
	require.Error(t, err)
	assert.Nil(t, p)
	assert.Error(t, ctx.Err(), "New returns when its context ends")
	var ce *pool.ConnectError
	require.ErrorAs(t, err, &ce)
	assert.GreaterOrEqual(t, ce.Attempts, 2)
	assert.NotErrorIs(t, ce.Err, context.DeadlineExceeded, "the cause is the connection failure, not the deadline")
	assert.NotContains(t, err.Error(), "s3cr3t-PA55")
	assert.Contains(t, logs.String(), "cannot connect to PostgreSQL yet")
	assert.NotContains(t, logs.String(), "s3cr3t-PA55")
}

func TestAcquireAfterCloseFails(t *testing.T) {
	ctx := context.Background()
	p, err := pool.New(ctx, pgtest.PoolConfig(t), pool.DefaultConfig())
	require.NoError(t, err)
	p.Close()
	p.Close() // idempotent
	_, err = p.Acquire(ctx)
	assert.ErrorIs(t, err, pool.ErrClosed)
	assert.ErrorIs(t, p.Ping(ctx), pool.ErrClosed)
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, pool.DefaultConfig().Validate())
	require.NoError(t, pool.Config{}.Validate())
	err := pool.Config{AcquireTimeout: -1, HealthCheckInterval: -1}.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AcquireTimeout must not be negative")
	assert.Contains(t, err.Error(), "HealthCheckInterval must not be negative")

	_, err = pool.New(context.Background(), nil, pool.DefaultConfig())
	assert.Error(t, err)
	_, err = pool.New(context.Background(), pgtest.PoolConfig(t), pool.Config{IdleValidationThreshold: -time.Second})
	assert.Error(t, err)
}

func TestPoolDoesNotPrintPassword(t *testing.T) {
	pcfg := pgtest.PoolConfig(t)
	pcfg.ConnConfig.Password = "s3cr3t-PA55" // trust authentication ignores it
	p := newPool(t, pcfg, pool.DefaultConfig())
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		assert.NotContains(t, fmt.Sprintf(format, p), "s3cr3t-PA55", format)
	}
	assert.Contains(t, p.String(), pcfg.ConnConfig.Database)
}

// recordingTracer is a user's tracer: the pool must keep calling it.
type recordingTracer struct {
	mu       sync.Mutex
	queries  []string
	acquires int
}

func (r *recordingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, d.SQL)
	return ctx
}

func (r *recordingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recordingTracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acquires++
	return ctx
}

func (r *recordingTracer) TraceAcquireEnd(context.Context, *pgxpool.Pool, pgxpool.TraceAcquireEndData) {
}

func TestUserTracerStillCalled(t *testing.T) {
	ctx := context.Background()
	rt := &recordingTracer{}
	pcfg := pgtest.PoolConfig(t)
	pcfg.ConnConfig.Tracer = rt
	p := newPool(t, pcfg, pool.DefaultConfig())
	_, err := p.Pgx().Exec(ctx, "SELECT 42")
	require.NoError(t, err)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	assert.Contains(t, rt.queries, "SELECT 42")
	assert.GreaterOrEqual(t, rt.acquires, 1)
}

func TestStateString(t *testing.T) {
	assert.Equal(t, "healthy", pool.StateHealthy.String())
	assert.Equal(t, "unhealthy", pool.StateUnhealthy.String())
	assert.Equal(t, "unknown", pool.StateUnknown.String())
	assert.True(t, strings.HasPrefix(pool.ErrAcquireTimeout.Error(), "pool:"))
	assert.True(t, errors.Is(&pool.AcquireTimeoutError{}, pool.ErrAcquireTimeout))
}
